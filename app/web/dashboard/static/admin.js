/* jobmaster console: schedules (list, create, run now, delete) and a job's
 * worker tokens (issue, shown once; revoke). Uses window.JM from
 * dashboard.js; API data reaches the DOM only as text.
 */
(function () {
  "use strict";

  var JM = window.JM;
  var $ = JM.$, h = JM.h, setText = JM.setText;
  var SCHEDULES_MS = 5000;
  var timer = null;

  // ------------------------------------------------------------ schedules

  function jobCell(s) {
    if (!s.last_job) return "—";
    return h("a", { href: "#/jobs/" + encodeURIComponent(s.last_job), class: "mono", text: s.last_job,
      title: s.last_run ? "slot of " + JM.fmtTime(s.last_run) : "run by hand" });
  }

  function scheduleRow(s) {
    var job = s.job || {};
    return h("tr", { "data-schedule": s.id }, [
      JM.cell("Schedule", "col-name", [h("strong", { text: s.name }), h("div", { class: "sub mono", text: s.id })]),
      JM.cell("Cron", "mono", [s.cron]),
      JM.cell("Time zone", "", [s.timezone]),
      h("td", { "data-label": "Next run", title: JM.fmtFullTime(s.next_run) }, [JM.fmtTime(s.next_run)]),
      JM.cell("Last job", "", [jobCell(s)]),
      JM.cell("Job", "mono col-error", [h("span", { title: JM.shortJSON(job, 4000),
        text: String(job.name || "") + " · " + JSON.stringify(job.tasks || {}).slice(0, 80) })]),
      JM.cell("", "col-actions", [h("div", { class: "actions" }, [
        h("button", { type: "button", class: "btn btn-sm sched-run", text: "Run now",
          onclick: function (ev) { act(s, "run", ev.currentTarget); } }),
        h("button", { type: "button", class: "btn btn-sm btn-danger sched-delete", text: "Delete",
          onclick: function (ev) { act(s, "delete", ev.currentTarget); } })])])
    ]);
  }

  async function loadSchedules() {
    var doc = await JM.api("GET", "/schedules");
    var list = doc && Array.isArray(doc.schedules) ? doc.schedules : [];
    $("schedules-body").replaceChildren.apply($("schedules-body"), list.map(scheduleRow));
    $("schedules-empty").hidden = list.length > 0;
    setText($("schedules-summary"), list.length + " schedule" + (list.length === 1 ? "" : "s") +
      " · each makes a job at every slot of its cron, read in its time zone");
  }

  function reload() {
    return loadSchedules().then(function () { JM.clearError("schedules"); })
      .catch(function (e) { JM.showError("Schedules: " + e.message, "schedules"); });
  }

  async function act(s, what, button) {
    if (what === "delete" && !window.confirm("Delete schedule “" + s.name + "”? The jobs it made stay.")) return;
    button.disabled = true;
    try {
      var path = "/schedules/" + encodeURIComponent(s.id);
      if (what === "delete") {
        await JM.api("DELETE", path);
        JM.toast("Deleted schedule “" + s.name + "”");
      } else {
        var job = await JM.api("POST", path + "/run");
        JM.toast("Made job “" + job.name + "”");
      }
      JM.clearError("action");
    } catch (e) {
      JM.showError((what === "delete" ? "Delete" : "Run") + " failed: " + e.message, "action");
    } finally {
      button.disabled = false;
      reload();
    }
  }

  function scheduleError(message) {
    JM.fieldError($("form-schedule"), $("form-schedule-error"), message);
  }

  async function createSchedule(ev) {
    ev.preventDefault();
    var form = $("form-schedule");
    var body = { name: form.elements.name.value.trim(), cron: form.elements.cron.value.trim() };
    var tz = form.elements.timezone.value.trim();
    if (tz) body.timezone = tz;
    try {
      body.job = JSON.parse(form.elements.job.value);
    } catch (e) {
      scheduleError("body.job: is not valid JSON (" + e.message + ")");
      return;
    }
    var submit = $("form-schedule-submit");
    submit.disabled = true;
    try {
      var s = await JM.api("POST", "/schedules", body);
      scheduleError("");
      form.elements.name.value = "";
      form.elements.cron.value = "";
      JM.toast("Schedule “" + s.name + "”: next run " + JM.fmtTime(s.next_run));
      await reload();
    } catch (e) {
      scheduleError(e.message);   // the server's "body.<field>: ..." lands next to the field
    } finally {
      submit.disabled = false;
    }
  }

  function route(hash) {
    clearInterval(timer);
    timer = null;
    if (hash !== "#/schedules") return;
    reload();
    timer = setInterval(function () { if (!document.hidden) reload(); }, SCHEDULES_MS);
  }

  // --------------------------------------------------------- job tokens

  function tokenError(message) {
    JM.fieldError($("jobtoken-form"), $("jobtoken-error"), message);
  }

  function forgetIssued() {
    $("jobtoken-issued").hidden = true;
    $("jobtoken-secret").value = "";
  }

  async function issueToken(ev) {
    ev.preventDefault();
    var id = JM.selected();
    var raw = $("jobtoken-form").elements.ttl_seconds.value.trim();
    var body = raw === "" ? {} : { ttl_seconds: Number(raw) };
    $("jobtoken-issue").disabled = true;
    try {
      var t = await JM.api("POST", JM.jobPath(id) + "/tokens", body);
      if (JM.selected() !== id) return;
      tokenError("");
      $("jobtoken-secret").value = t.token;
      setText($("jobtoken-expires"), JM.fmtTime(t.expires_at));
      $("jobtoken-expires").title = JM.fmtFullTime(t.expires_at);
      $("jobtoken-issued").hidden = false;
      $("jobtoken-secret").select();
    } catch (e) {
      forgetIssued();
      tokenError(e.message);
    } finally {
      $("jobtoken-issue").disabled = false;
    }
  }

  async function revokeTokens() {
    var id = JM.selected();
    if (!window.confirm("Revoke every worker token of this job? Workers using one get 401 from now on.")) return;
    try {
      var r = await JM.api("DELETE", JM.jobPath(id) + "/tokens");
      tokenError("");
      forgetIssued();
      JM.toast("Revoked " + r.revoked + " token" + (r.revoked === 1 ? "" : "s"));
    } catch (e) {
      tokenError("Revoke failed: " + e.message);
    }
  }

  async function copyToken() {
    var input = $("jobtoken-secret");
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      JM.toast("Token copied");
    } catch (e) {
      // no clipboard permission (plain http, or a policy): it stays selected
      JM.toast("Press Ctrl+C to copy the selected token");
    }
  }

  // ------------------------------------------------------------------ wiring

  JM.hooks.route.push(route);

  function init() {
    $("form-schedule").addEventListener("submit", createSchedule);
    $("jobtoken-form").addEventListener("submit", issueToken);
    $("jobtoken-revoke").addEventListener("click", revokeTokens);
    $("jobtoken-copy").addEventListener("click", copyToken);
    window.addEventListener("hashchange", function () { forgetIssued(); tokenError(""); });
    route(window.location.hash);  // dashboard.js may have routed before this file ran
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
