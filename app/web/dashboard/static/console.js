/* jobmaster console: the parts of the page beyond the jobs table — the
 * throughput chart, the fleet, the task inspector, results with paging and
 * download, the workers page across jobs, and the new-job form's settings
 * built from the OpenAPI document. Uses what dashboard.js exposes as
 * window.JM; like it, it puts API data in the DOM only as text.
 */
(function () {
  "use strict";

  var JM = window.JM;
  var $ = JM.$, h = JM.h, setText = JM.setText;
  var RESULTS_PAGE = 50;
  var DOWNLOAD_PAGE = 10000;
  var WORKERS_MS = 2000;
  // The job-create properties the form has fixed fields for; every other
  // one in the OpenAPI schema gets a generated field.
  var FIXED = ["name", "tasks", "params", "sealed", "batch_size", "lease_seconds",
    "max_attempts", "priority"];

  var view = { results: { job: null, pages: [null], text: null }, workersTimer: null,
    extra: [], taskShown: null };

  function errorBox(id, message) {
    setText($(id), message || "");
    $(id).hidden = !message;
  }

  /* A text (not JSON) API call: results are NDJSON. */
  async function apiText(path) {
    var headers = {};
    var token = JM.token();
    if (token) headers["Authorization"] = "Bearer " + token;
    var resp = await fetch("/api/v1" + path, { headers: headers, cache: "no-store" });
    var text = await resp.text();
    if (!resp.ok) {
      var message = resp.status + " " + resp.statusText;
      try { message = JSON.parse(text).message || message; } catch (e) { /* not JSON */ }
      throw new JM.ApiError(resp.status, "http_" + resp.status, message);
    }
    return text;
  }

  // ----------------------------------------------------------------- chart

  async function loadChart(job) {
    var series = await JM.api("GET", JM.jobPath(job.id) + "/series");
    if (JM.selected() !== job.id) return;
    window.JMChart.draw($("chart"), series);
    setText($("chart-note"), "per " + series.interval_seconds + " s");
  }

  // ----------------------------------------------------------------- fleet

  function fleetRows(doc) {
    var rows = [];
    (doc.launches || []).forEach(function (l) {
      var when = JM.fmtTime(l.launched_at);
      if (l.processes) {
        l.processes.forEach(function (p) {
          rows.push([p.name, "local", l.host + " pid " + p.pid, p.state, when]);
        });
      } else {
        var st = l.error ? "unknown: " + l.error : (l.running || 0) + " running, " +
          (l.succeeded || 0) + " succeeded, " + (l.failed || 0) + " failed";
        rows.push([l.job_name, "kubernetes", l.namespace, st, when]);
      }
    });
    return rows;
  }

  async function loadFleet(job) {
    var doc = await JM.api("GET", JM.jobPath(job.id) + "/fleet");
    if (JM.selected() !== job.id) return;
    var rows = fleetRows(doc);
    $("fleet-body").replaceChildren.apply($("fleet-body"), rows.map(function (r) {
      return h("tr", { "data-state": r[3] }, r.map(function (v, i) {
        return JM.cell(["Worker", "Launcher", "Where", "State", "Launched"][i], i === 0 ? "mono" : "", [String(v)]);
      }));
    }));
    $("fleet-wrap").hidden = rows.length === 0;
    $("fleet-stop").hidden = !(doc.launches || []).length;
    var finished = job.state === "completed" || job.state === "cancelled";
    $("fleet-launch").disabled = finished;
    setText($("fleet-summary"), doc.launched ? "(" + doc.launched + " launched" +
      (doc.running !== null && doc.running !== undefined ? ", " + doc.running + " running" : "") + ")" : "");
  }

  async function launchFleet(id, workers) {
    var answer = await JM.api("POST", JM.jobPath(id) + "/fleet", { workers: workers });
    JM.toast("Launched " + answer.launched + " worker" + (answer.launched === 1 ? "" : "s") +
      " (" + answer.launcher + ")");
    return answer;
  }

  async function onLaunch(ev) {
    ev.preventDefault();
    var id = JM.selected();
    var n = Number($("fleet-workers").value);
    if (!Number.isInteger(n) || n < 1) { errorBox("fleet-error", "Workers must be a whole number, at least 1."); return; }
    $("fleet-launch").disabled = true;
    try {
      await launchFleet(id, n);
      errorBox("fleet-error", "");
    } catch (e) {
      errorBox("fleet-error", "Launch failed: " + e.message);
    } finally {
      $("fleet-launch").disabled = false;
      JM.refresh();
    }
  }

  async function onStopFleet() {
    var id = JM.selected();
    if (!window.confirm("Stop this job's workers? They finish their running tasks and release the rest.")) return;
    try {
      var r = await JM.api("DELETE", JM.jobPath(id) + "/fleet");
      errorBox("fleet-error", "");
      JM.toast("Stopping " + r.stopped + " worker" + (r.stopped === 1 ? "" : "s"));
    } catch (e) {
      errorBox("fleet-error", "Stop failed: " + e.message);
    } finally {
      JM.refresh();
    }
  }

  // ------------------------------------------------------------ inspector

  function text(v) {
    if (v === null || v === undefined) return "—";
    return typeof v === "string" ? v : JM.shortJSON(v, 100000);
  }

  async function inspect(task) {
    var id = JM.selected();
    if (id === null) return;
    $("task-id").value = String(task);
    try {
      var t = await JM.api("GET", JM.jobPath(id) + "/tasks/" + encodeURIComponent(task));
      errorBox("task-error", "");
      view.taskShown = t.id;
      var kv = $("task-kv");
      kv.replaceChildren();
      [["Task", String(t.id)], ["State", t.state], ["Attempts", String(t.attempts)],
        ["Failed attempts", String(t.failed_attempts)],
        ["Held by", t.lease ? t.lease.worker + " (lease " + t.lease.id + ", expires " +
          JM.fmtTime(t.lease.expires_at) + ")" : "—"]].forEach(function (p) {
        kv.appendChild(h("dt", { text: p[0] }));
        kv.appendChild(h("dd", { text: p[1], "data-key": p[0] }));
      });
      setText($("task-payload"), t.archived ? "(payloads are not archived)" : text(t.payload));
      setText($("task-note"), attemptNote(t));
      var rows = (t.history || []).map(function (a) {
        return h("tr", null, [JM.cell("Attempt", "num", [text(a.attempt)]), JM.cell("Worker", "mono", [text(a.worker)]),
          JM.cell("Outcome", "", [a.outcome]),
          h("td", { "data-label": "Error", class: "col-error" }, [a.error ? h("pre", { class: "code", text: text(a.error) }) : "—"]),
          JM.cell("At", "", [JM.fmtTime(a.at)])]);
      });
      if (!rows.length) rows = [h("tr", null, [h("td", { colspan: "5", class: "muted",
        text: t.attempts ? "No attempt to show." : "Never handed out yet." })])];
      $("task-history").replaceChildren.apply($("task-history"), rows);
      setText($("task-result"), t.result ? text(t.result.result) : "—");
      $("task-detail").hidden = false;
      $("task-detail").scrollIntoView({ block: "nearest" });
    } catch (e) {
      $("task-detail").hidden = true;
      errorBox("task-error", e.message);
    }
  }

  /* Where the attempts listed come from (the API's attempt_log). */
  function attemptNote(t) {
    if (t.attempt_log === "archive") {
      var listed = (t.history || []).filter(function (a) { return a.outcome !== "ok" && a.outcome !== "running"; }).length;
      return "Every failed or expired attempt, from the archive (MongoDB)" +
        (t.failed_attempts > listed && listed ? "; the newest " + listed + " of " + t.failed_attempts : "") +
        ". An attempt shows here once the archive has it (a second or so).";
    }
    if (t.attempt_log === "unreachable") {
      return "The archive (MongoDB) does not answer: earlier attempts cannot be shown now.";
    }
    return "Earlier attempts are kept only with the archive (JOBMASTER_MONGO_URL). Without it the " +
      "server keeps the current lease, the result, the failed-attempt count (" + (t.failed_attempts || 0) +
      ") and the dead record with its last error.";
  }

  // -------------------------------------------------------------- results

  /* Results in task-id order, RESULTS_PAGE at a time. The server pages with
   * ?after=&limit=; filtering and sorting here too keeps the page right
   * against a server that sends every result in its own order. */
  async function loadResults() {
    var id = JM.selected();
    var r = view.results;
    if (r.job !== id) { r.job = id; r.pages = [null]; }
    var after = r.pages[r.pages.length - 1];
    var q = "?limit=" + RESULTS_PAGE + (after === null ? "" : "&after=" + after);
    var lines = (await apiText(JM.jobPath(id) + "/results" + q)).split("\n").filter(Boolean)
      .map(function (l) { return JSON.parse(l); })
      .filter(function (l) { return after === null || l.id > after; })
      .sort(function (a, b) { return a.id - b.id; }).slice(0, RESULTS_PAGE);
    if (JM.selected() !== id) return;
    r.last = lines.length ? lines[lines.length - 1].id : null;
    r.full = lines.length === RESULTS_PAGE;
    $("results-body").replaceChildren.apply($("results-body"), lines.map(function (l) {
      var value = l.ok === false ? l.error : l.result;
      return h("tr", { "data-task": String(l.id) }, [
        JM.cell("Task", "num mono", [h("button", { type: "button", class: "link task-link", text: String(l.id),
          onclick: function () { inspect(l.id); } })]),
        JM.cell("Attempt", "num", [text(l.attempt)]), JM.cell("Worker", "mono", [text(l.worker)]),
        JM.cell("Result", "mono col-error", [text(value)]), JM.cell("Finished", "", [JM.fmtTime(l.finished_at)])]);
    }));
    $("results-empty").hidden = lines.length > 0;
    $("results-prev").disabled = r.pages.length <= 1;
    $("results-next").disabled = !r.full;
    setText($("results-page"), lines.length ? "tasks " + lines[0].id + "–" + r.last : "");
  }

  function resultsError(e) { JM.showError("Results: " + e.message, "results"); }

  /* Every result as NDJSON, in pages of DOWNLOAD_PAGE in task-id order. A
   * server that answers more than a page at once does not page: its answer
   * is taken whole, as it sent it. */
  async function allResults(id) {
    var parts = [], after = null;
    for (;;) {
      var text = await apiText(JM.jobPath(id) + "/results?limit=" + DOWNLOAD_PAGE +
        (after === null ? "" : "&after=" + after));
      var lines = text.split("\n").filter(Boolean);
      if (after === null && lines.length > DOWNLOAD_PAGE) return text;
      parts.push(text);
      if (lines.length < DOWNLOAD_PAGE) return parts.join("");
      var next = JSON.parse(lines[lines.length - 1]).id;
      if (after !== null && !(next > after)) return parts.join("");  // no progress: stop
      after = next;
    }
  }

  async function downloadResults() {
    var id = JM.selected();
    var body = await allResults(id);
    var url = URL.createObjectURL(new Blob([body], { type: "application/x-ndjson" }));
    var a = h("a", { href: url, download: "results-" + id + ".ndjson", class: "sr-only" });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  // ------------------------------------------------------- workers page

  async function loadAllWorkers() {
    var doc = await JM.api("GET", "/workers");
    var rows = (doc.workers || []).map(function (w) {
      return h("tr", { class: w.stale ? "stale" : "", "data-worker": w.worker }, [
        JM.cell("Worker", "mono", [w.worker]),
        JM.cell("Job", "", [h("a", { href: "#/jobs/" + encodeURIComponent(w.job), text: w.job_name || w.job })]),
        JM.cell("Leases", "num", [JM.fmtInt(w.leases)]), JM.cell("Done", "num", [JM.fmtInt(w.done)]),
        JM.cell("Failed", "num", [JM.fmtInt(w.failed)]),
        h("td", { "data-label": "Last seen", title: JM.fmtFullTime(w.last_seen) }, [JM.fmtAgo(w.last_seen)]),
        JM.cell("Rate", "num", [JM.fmtRate(w.rate)]),
        JM.cell("Status", "", [h("span", { class: "badge " + (w.stale ? "badge-stale" : "badge-muted"),
          text: w.stale ? "stale" : (w.leases ? "working" : "idle") })])]);
    });
    $("allworkers-body").replaceChildren.apply($("allworkers-body"), rows);
    $("allworkers-empty").hidden = rows.length > 0;
    var stale = (doc.workers || []).filter(function (w) { return w.stale; }).length;
    setText($("allworkers-summary"), rows.length + " worker" + (rows.length === 1 ? "" : "s") +
      (stale ? " · " + stale + " stale" : ""));
  }

  var PAGES = { "#/workers": "workers", "#/schedules": "schedules" };

  function route(hash) {
    var page = PAGES[hash] || "jobs";
    var workers = page === "workers";
    ["workers", "schedules"].forEach(function (p) { $(p + "-page").hidden = page !== p; });
    $("jobs-card").hidden = page !== "jobs";
    ["jobs", "workers", "schedules"].forEach(function (p) {
      $("tab-" + p).classList.toggle("tab-active", page === p);
    });
    clearInterval(view.workersTimer);
    view.workersTimer = null;
    if (workers) {
      var tick = function () { loadAllWorkers().catch(function (e) { JM.showError("Workers: " + e.message, "workers"); }); };
      tick();
      view.workersTimer = setInterval(tick, WORKERS_MS);
    }
  }

  // ------------------------------------------------- the new-job form

  function label(name) { return name.charAt(0).toUpperCase() + name.slice(1).replace(/_/g, " "); }

  function fieldFor(name, schema) {
    var input, type = schema.type;
    if (type === "integer" || type === "number") {
      input = h("input", { name: name, type: "number", step: type === "integer" ? "1" : "any",
        min: schema.minimum, max: schema.maximum });
    } else if (type === "boolean" || schema["enum"]) {
      input = h("select", { name: name }, [h("option", { value: "", text: "(default)" })].concat(
        (schema["enum"] || [true, false]).map(function (v) { return h("option", { value: JSON.stringify(v), text: String(v) }); })));
    } else if (type === "string") {
      input = h("input", { name: name, type: "text", maxlength: schema.maxLength, autocomplete: "off" });
    } else {  // object, array, or several shapes: JSON (or, for no type, plain text)
      input = h("textarea", { name: name, rows: "1", class: "mono", spellcheck: "false",
        placeholder: type ? "JSON " + type : "JSON, or text" });
    }
    view.extra.push({ name: name, schema: schema });
    return h("label", { class: "field", title: schema.description || "" }, [h("span", { text: label(name) }), input]);
  }

  function readExtra(form, body, errors) {
    view.extra.forEach(function (f) {
      var el = form.elements[f.name];
      var raw = el ? el.value.trim() : "";
      if (raw === "") return;
      var type = f.schema.type;
      if (type === "integer" || type === "number") {
        var v = Number(raw);
        if (!isFinite(v) || (type === "integer" && !Number.isInteger(v))) { errors.push(label(f.name) + " must be a number."); return; }
        body[f.name] = v;
      } else if (type === "string") {
        body[f.name] = raw;
      } else if (type === "boolean" || f.schema["enum"]) {
        body[f.name] = JSON.parse(raw);
      } else {
        try { body[f.name] = JSON.parse(raw); } catch (e) {
          if (type) errors.push(label(f.name) + " is not valid JSON: " + e.message);
          else body[f.name] = raw;
        }
      }
    });
    var n = form.elements.launch_workers.value.trim();
    if (n !== "" && !(Number.isInteger(Number(n)) && Number(n) >= 0)) errors.push("Launch workers must be a whole number.");
  }

  async function buildForm() {
    var doc = await fetch("/api/v1/openapi.json", { cache: "no-store" }).then(function (r) { return r.json(); });
    var op = doc && doc.paths && doc.paths["/api/v1/jobs"] && doc.paths["/api/v1/jobs"].post;
    var schema = op && op.requestBody.content["application/json"].schema;
    var props = schema && schema.properties || {};
    var box = $("form-extra");
    Object.keys(props).filter(function (n) { return FIXED.indexOf(n) < 0; }).sort().forEach(function (n) {
      box.appendChild(fieldFor(n, props[n]));
    });
  }

  async function afterCreate(job, form) {
    var n = Number(form.dataset.launch || 0);
    form.dataset.launch = "0";
    if (!n || !job) return;
    try {
      await launchFleet(String(job.id), n);
    } catch (e) {
      JM.showError("The job was created, but launching its workers failed: " + e.message, "action");
    }
    JM.refresh();
  }

  // ------------------------------------------------------------------ wiring

  JM.inspect = inspect;
  JM.hooks.detail.push(async function (job) {
    if (job.archived) return;  // no series or fleet is left of it
    await Promise.all([loadChart(job), loadFleet(job)].map(function (p) {
      return p.catch(function (e) { if (e.status !== 404) throw e; });
    }));
  });
  JM.hooks.formBody.push(function (form, body, errors) {
    readExtra(form, body, errors);
    form.dataset.launch = form.elements.launch_workers.value.trim() || "0";
  });
  JM.hooks.created.push(afterCreate);
  JM.hooks.route.push(route);

  function init() {
    $("fleet-form").addEventListener("submit", onLaunch);
    $("fleet-stop").addEventListener("click", onStopFleet);
    $("task-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = $("task-id").value.trim();
      if (!/^\d+$/.test(v)) { errorBox("task-error", "A task id is a whole number, 0 or more."); return; }
      inspect(Number(v));
    });
    $("results-section").addEventListener("toggle", function () {
      if ($("results-section").open) loadResults().catch(resultsError);
    });
    $("results-next").addEventListener("click", function () {
      view.results.pages.push(view.results.last);
      loadResults().catch(resultsError);
    });
    $("results-prev").addEventListener("click", function () {
      if (view.results.pages.length > 1) view.results.pages.pop();
      loadResults().catch(resultsError);
    });
    $("results-reload").addEventListener("click", function () { loadResults().catch(resultsError); });
    $("results-download").addEventListener("click", function () { downloadResults().catch(resultsError); });
    window.addEventListener("hashchange", function () {
      view.results.job = null;
      $("results-section").open = false;
      $("task-detail").hidden = true;
    });
    buildForm().catch(function (e) { JM.showError("Cannot read the API description: " + e.message, "form"); });
    route(window.location.hash);  // dashboard.js may have routed before this file ran
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
