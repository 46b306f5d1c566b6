/* jobmaster dashboard: plain JavaScript, no dependencies, nothing fetched
 * from outside this server.
 *
 * Every string that comes from the API reaches the DOM through textContent
 * or a text node (see h() below); this file never parses data as HTML.
 */
(function () {
  "use strict";

  var API = "/api/v1";
  var TOKEN_KEY = "jobmaster.adminToken";
  var REFRESH_MS = 2000;
  var MAX_DEAD_ROWS = 500;
  var MAX_JOBS = 1000;

  var state = {
    jobs: [],
    rows: new Map(),        // job id -> row widgets, updated in place
    selected: null,         // job id shown in the detail view
    detailActionsKey: "",
    timer: null,
    inFlight: false,
    again: false,           // a refresh was asked for while one was running
    userPaused: false,
    tokenPrompt: null,      // the pending Promise while the token dialog is open
    errorSource: null,
    toastTimer: null,
    archive: false,         // the server has a MongoDB archive (/readyz lists its check)
    filter: { text: "", state: "" }   // the jobs table's search box and state menu
  };

  /* Extension points for console.js (same origin, loaded after this file):
   * each is a list of functions, run in order. detail(job): the job view
   * is being refreshed; formBody(form, body, errors): add settings to a new
   * job's body; created(job, form): a job was created from the form;
   * route(hash): the location hash changed. */
  var hooks = { detail: [], formBody: [], created: [], route: [] };

  async function runHooks(name) {
    var args = Array.prototype.slice.call(arguments, 1);
    for (var i = 0; i < hooks[name].length; i++) await hooks[name][i].apply(null, args);
  }

  // ---------------------------------------------------------------- helpers

  function $(id) { return document.getElementById(id); }

  /* Build an element. props: class, text, on<event>, title, and plain
   * attributes. Children: nodes, or strings (which become text nodes). */
  function h(tag, props, children) {
    var el = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") el.className = value;
        else if (key === "text") el.textContent = String(value);
        else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
        else el.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return el;
  }

  function setText(el, value) {
    var s = value === null || value === undefined ? "" : String(value);
    if (el.textContent !== s) el.textContent = s;
  }

  function num(v) { return typeof v === "number" && isFinite(v) ? v : 0; }

  function fmtInt(v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    return Math.round(v).toLocaleString();
  }

  function fmtRate(v) {
    if (typeof v !== "number" || !isFinite(v)) return "—";
    if (v === 0) return "0/s";
    if (v < 10) return v.toFixed(2) + "/s";
    if (v < 100) return v.toFixed(1) + "/s";
    return Math.round(v).toLocaleString() + "/s";
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  function fmtDuration(s) {
    if (typeof s !== "number" || !isFinite(s) || s < 0) return "—";
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + pad2(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + pad2(Math.floor(s % 3600 / 60)) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }

  function fmtTime(epoch) {
    if (typeof epoch !== "number" || !isFinite(epoch)) return "—";
    var d = new Date(epoch * 1000);
    var now = new Date();
    var time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (d.toDateString() === now.toDateString()) return time;
    return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) + " " + time;
  }

  function fmtFullTime(epoch) {
    if (typeof epoch !== "number" || !isFinite(epoch)) return "";
    return new Date(epoch * 1000).toISOString();
  }

  function fmtAgo(epoch) {
    if (typeof epoch !== "number" || !isFinite(epoch)) return "—";
    var s = Date.now() / 1000 - epoch;
    if (s < 1) return "just now";
    return fmtDuration(s) + " ago";
  }

  function shortJSON(value, limit) {
    var s;
    try { s = JSON.stringify(value, null, 2); } catch (e) { s = String(value); }
    if (s === undefined) s = "null";
    if (s.length > limit) s = s.slice(0, limit) + "\n… (" + (s.length - limit).toLocaleString() + " more characters)";
    return s;
  }

  // ------------------------------------------------------------- messages

  function showError(message, source) {
    state.errorSource = source || "action";
    setText($("banner-error-text"), message);
    $("banner-error").hidden = false;
  }

  function clearError(source) {
    if (source && state.errorSource !== source) return;
    state.errorSource = null;
    $("banner-error").hidden = true;
  }

  function toast(message) {
    var el = $("toast");
    setText(el, message);
    el.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(function () { el.hidden = true; }, 3000);
  }

  function setConn(kind, text) {
    $("conn").className = "pill pill-" + kind;
    setText($("conn-text"), text);
  }

  // ------------------------------------------------------------------ auth

  function getToken() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function setToken(token) {
    try {
      if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lives until the dialog closes */ }
  }

  /* Open the token dialog; resolves true when a token was saved, false on
   * cancel. Concurrent 401s share one dialog. */
  function askToken(reason) {
    if (state.tokenPrompt) return state.tokenPrompt;
    var dlg = $("dlg-token");
    var form = $("form-token");
    setText($("token-reason"), reason || "");
    form.elements.token.value = getToken();
    state.tokenPrompt = new Promise(function (resolve) {
      function done(saved) {
        form.removeEventListener("submit", onSubmit);
        $("form-token-cancel").removeEventListener("click", onCancel);
        $("form-token-forget").removeEventListener("click", onForget);
        dlg.removeEventListener("cancel", onCancel);
        if (dlg.open) dlg.close();
        state.tokenPrompt = null;
        resolve(saved);
      }
      function onSubmit(ev) {
        ev.preventDefault();
        var token = form.elements.token.value.trim();
        if (!token) { form.elements.token.focus(); return; }
        setToken(token);
        done(true);
      }
      function onCancel(ev) { if (ev) ev.preventDefault(); done(false); }
      function onForget() { setToken(""); form.elements.token.value = ""; done(false); toast("Token forgotten"); }
      form.addEventListener("submit", onSubmit);
      $("form-token-cancel").addEventListener("click", onCancel);
      $("form-token-forget").addEventListener("click", onForget);
      dlg.addEventListener("cancel", onCancel);
    });
    dlg.showModal();
    form.elements.token.focus();
    return state.tokenPrompt;
  }

  // ------------------------------------------------------------------- API

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.name = "ApiError";

  function noteServedBy(resp) {
    var who = resp.headers.get("X-Served-By");
    if (who) setText($("served-by"), "served by " + who);
  }

  async function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var token = getToken();
    if (token) headers["Authorization"] = "Bearer " + token;
    var init = { method: method, headers: headers, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var resp;
    try {
      resp = await fetch(API + path, init);
    } catch (e) {
      throw new ApiError(0, "network", "Cannot reach the server (" + (e && e.message || "network error") + ").");
    }
    noteServedBy(resp);
    var text = await resp.text();
    var data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    var message = data && typeof data.message === "string" && data.message
      ? data.message
      : (resp.status + " " + (resp.statusText || "error"));
    if (resp.status === 401) {
      var reason = token
        ? "The server rejected the saved token (" + message + "). Enter an admin token."
        : "This server needs an admin token (" + message + ").";
      if (await askToken(reason)) return api(method, path, body);
      throw new ApiError(401, "unauthorized", "Not signed in: " + message);
    }
    if (!resp.ok) {
      var code = data && data.error ? String(data.error) : "http_" + resp.status;
      if (resp.status === 403) message = "Forbidden: " + message + " (use the Token button to enter an admin token)";
      throw new ApiError(resp.status, code, message);
    }
    return data;
  }

  function jobPath(id) { return "/jobs/" + encodeURIComponent(id); }

  // ------------------------------------------------------------- readiness

  async function loadReady() {
    var resp, data = null;
    try {
      resp = await fetch("/readyz", { cache: "no-store", headers: { "Accept": "application/json" } });
      data = await resp.json();
    } catch (e) {
      return { ok: false, text: "Server unreachable" };
    }
    // /readyz names the mongo check only when an archive is configured.
    state.archive = !!(data && data.checks && Object.prototype.hasOwnProperty.call(data.checks, "mongo"));
    $("opt-archived").hidden = $("opt-archived").disabled = !state.archive;
    var open = data && data.auth === "open";
    $("banner-open").hidden = !open;
    if (open && typeof data.warning === "string" && data.warning) {
      setText($("banner-open-text"), data.warning.charAt(0).toUpperCase() + data.warning.slice(1) + ".");
    }
    if (!resp.ok || !data || data.status !== "ok") {
      var checks = data && data.checks ? Object.keys(data.checks).filter(function (k) {
        return data.checks[k] !== "ok";
      }).map(function (k) { return k + ": " + data.checks[k]; }).join(", ") : "";
      return { ok: false, text: "Not ready" + (checks ? " — " + checks : "") };
    }
    return { ok: true };
  }

  // ---------------------------------------------------------- progress bar

  var SEGMENTS = ["done", "dead", "leased"];

  function createBar(large) {
    var bar = h("div", { class: "bar" + (large ? " bar-lg" : ""), role: "img" });
    var segs = {};
    SEGMENTS.forEach(function (k) {
      segs[k] = h("span", { class: "seg seg-" + k });
      bar.appendChild(segs[k]);
    });
    return { el: bar, segs: segs };
  }

  function updateBar(bar, counts) {
    var total = num(counts.total);
    SEGMENTS.forEach(function (k) {
      var pct = total > 0 ? num(counts[k]) / total * 100 : 0;
      bar.segs[k].style.width = pct.toFixed(3) + "%";
    });
    var label = "done " + fmtInt(num(counts.done)) + " · dead " + fmtInt(num(counts.dead)) +
      " · leased " + fmtInt(num(counts.leased)) + " · pending " + fmtInt(num(counts.pending)) +
      " of " + fmtInt(total);
    bar.el.setAttribute("aria-label", label);
    bar.el.title = label;
  }

  function percent(counts) {
    var total = num(counts.total);
    if (total <= 0) return null;
    return (num(counts.done) + num(counts.dead)) / total * 100;
  }

  function fmtPercent(p) {
    if (p === null) return "—";
    if (p >= 100) return "100%";
    if (p >= 99.9) return "99.9%";
    return p.toFixed(1) + "%";
  }

  // ----------------------------------------------------------- job actions

  var ACTIONS = {
    pause: { label: "Pause", method: "POST", path: "/pause" },
    resume: { label: "Resume", method: "POST", path: "/resume" },
    seal: { label: "Seal", method: "POST", path: "/seal" },
    retry: { label: "Retry dead", method: "POST", path: "/dead/retry",
      confirm: "Put the dead tasks of “%s” back to pending?" },
    cancel: { label: "Cancel", method: "POST", path: "/cancel", danger: true,
      confirm: "Cancel job “%s”? Workers will get no more of its tasks." },
    "delete": { label: "Delete", method: "DELETE", path: "", danger: true,
      confirm: "Delete job “%s” and all its tasks and results? This cannot be undone." }
  };

  function actionsFor(job) {
    var list = [];
    var st = job.state;
    if (job.archived) return [];   // only its history is left
    var active = st === "running" || st === "paused";
    if (st === "running") list.push("pause");
    if (st === "paused") list.push("resume");
    if (active && job.sealed === false) list.push("seal");
    if (num(job.counts && job.counts.dead) > 0 && st !== "cancelled") list.push("retry");
    if (active) list.push("cancel");
    list.push("delete");
    return list;
  }

  function renderActions(container, job) {
    container.replaceChildren();
    actionsFor(job).forEach(function (name) {
      var a = ACTIONS[name];
      container.appendChild(h("button", {
        type: "button",
        class: "btn btn-sm" + (a.danger ? " btn-danger" : ""),
        text: a.label,
        onclick: function (ev) { ev.stopPropagation(); runAction(job.id, name, ev.currentTarget); }
      }));
    });
  }

  function findJob(id) {
    for (var i = 0; i < state.jobs.length; i++) if (state.jobs[i].id === id) return state.jobs[i];
    return null;
  }

  async function runAction(id, name, button) {
    var a = ACTIONS[name];
    var job = findJob(id);
    var label = job && job.name ? job.name : id;
    if (a.confirm && !window.confirm(a.confirm.replace("%s", label))) return;
    if (button) button.disabled = true;
    try {
      var result = await api(a.method, jobPath(id) + a.path);
      clearError("action");
      if (name === "retry" && result && typeof result.retried === "number") {
        toast("Re-queued " + fmtInt(result.retried) + " dead task" + (result.retried === 1 ? "" : "s"));
      } else if (name === "delete") {
        toast("Deleted “" + label + "”");
        if (state.selected === id) selectJob(null);
      } else {
        toast(a.label + ": done");
      }
    } catch (e) {
      showError(a.label + " failed: " + e.message, "action");
    } finally {
      if (button) button.disabled = false;
      refresh();
    }
  }

  // ------------------------------------------------------------- jobs table

  function cell(label, cls, children) {
    return h("td", { "data-label": label, class: cls }, children);
  }

  function createRow(id) {
    var r = { actionsKey: "" };
    r.name = h("button", { type: "button", class: "link job-name",
      onclick: function () { selectJob(id); } });
    r.id = h("div", { class: "sub mono", text: id });
    r.state = h("span", { class: "badge" });
    r.sealed = h("span", { class: "badge badge-muted", text: "unsealed" });
    r.bar = createBar(false);
    r.pct = h("span", { class: "pct" });
    r.counts = h("span", { class: "sub" });
    r.rate = h("span");
    r.eta = h("span");
    r.created = h("span");
    r.actions = h("div", { class: "actions" });
    r.tr = h("tr", { "data-id": id }, [
      cell("Job", "col-name", [r.name, r.id]),
      cell("State", "col-state", [h("span", { class: "badges" }, [r.state, " ", r.sealed])]),
      cell("Progress", "col-progress", [r.bar.el, h("div", { class: "progress-meta" }, [r.pct, r.counts])]),
      cell("Rate", "num", [r.rate]),
      cell("ETA", "num", [r.eta]),
      cell("Created", "col-created", [r.created]),
      cell("Actions", "col-actions", [r.actions])
    ]);
    return r;
  }

  function etaText(job) {
    if (job.state === "completed") return "done";
    if (job.state === "cancelled") return "—";
    if (job.state === "paused") return "paused";
    return fmtDuration(job.eta_seconds);
  }

  function updateRow(r, job) {
    var c = job.counts || {};
    setText(r.name, job.name || "(unnamed)");
    r.name.title = "Show details of " + (job.name || job.id);
    setText(r.state, job.state || "?");
    r.state.className = "badge badge-" + (job.state || "unknown");
    r.sealed.hidden = job.sealed !== false;
    updateBar(r.bar, c);
    setText(r.pct, fmtPercent(percent(c)));
    setText(r.counts, fmtInt(num(c.done)) + " / " + fmtInt(num(c.total)) + " done" +
      (num(c.dead) ? " · " + fmtInt(num(c.dead)) + " dead" : "") +
      (num(c.leased) ? " · " + fmtInt(num(c.leased)) + " leased" : ""));
    setText(r.rate, rateText(job));
    setText(r.eta, etaText(job));
    setText(r.created, fmtTime(job.created_at));
    r.created.title = fmtFullTime(job.created_at);
    r.tr.classList.toggle("selected", state.selected === job.id);
    var key = actionsFor(job).join(",");
    if (key !== r.actionsKey) {
      r.actionsKey = key;
      renderActions(r.actions, job);
    }
  }

  function matches(job) {
    var f = state.filter;
    if (f.state && f.state !== "archived" && job.state !== f.state) return false;
    if (!f.text) return true;
    var text = f.text.toLowerCase();
    return String(job.name || "").toLowerCase().indexOf(text) >= 0 ||
      String(job.id).toLowerCase().indexOf(text) >= 0;
  }

  function renderJobs() {
    var body = $("jobs-body");
    var seen = new Set();
    var byState = {};
    var shown = state.jobs.filter(matches);
    state.jobs.forEach(function (job) { byState[job.state] = (byState[job.state] || 0) + 1; });
    shown.forEach(function (job, i) {
      var id = String(job.id);
      seen.add(id);
      var r = state.rows.get(id);
      if (!r) { r = createRow(id); state.rows.set(id, r); }
      updateRow(r, job);
      if (body.children[i] !== r.tr) body.insertBefore(r.tr, body.children[i] || null);
    });
    state.rows.forEach(function (r, id) {
      if (!seen.has(id)) { r.tr.remove(); state.rows.delete(id); }
    });
    setText($("jobs-empty"), archivedView() ? "No archived job yet: a job is archived when it is " +
      "deleted, or some time after it finished." : "No jobs yet. Create one with “New job”.");
    $("jobs-empty").hidden = state.jobs.length > 0;
    $("jobs-nomatch").hidden = state.jobs.length === 0 || shown.length > 0;
    var parts = [state.jobs.length + (archivedView() ? " archived" : "") + " job" +
      (state.jobs.length === 1 ? "" : "s")];
    if (shown.length !== state.jobs.length) parts.push(shown.length + " shown");
    ["running", "paused", "completed", "cancelled", "failed"].forEach(function (s) {
      if (byState[s]) parts.push(byState[s] + " " + s);
    });
    setText($("jobs-summary"), parts.join(" · "));
  }

  /* The jobs table lists the archive's jobs (gone from Redis) instead of
   * the live ones while the state menu says "archived". */
  function archivedView() { return state.filter.state === "archived"; }

  async function loadJobs() {
    var data = await api("GET", "/jobs?limit=" + MAX_JOBS + (archivedView() ? "&archived=true" : ""));
    state.jobs = (data && Array.isArray(data.jobs) ? data.jobs : []).filter(function (j) {
      return j && j.id !== undefined && j.id !== null;
    }).map(function (j) { j.id = String(j.id); return j; });
    renderJobs();
  }

  // ------------------------------------------------------------ detail view

  function selectedFromHash() {
    var m = /^#\/jobs\/(.+)$/.exec(window.location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (e) { return null; }
  }

  function selectJob(id) {
    if (id === null) {
      if (window.location.hash) {
        history.replaceState(null, "", window.location.pathname + window.location.search);
      }
    } else {
      window.location.hash = "#/jobs/" + encodeURIComponent(id);
    }
    onHashChange();
  }

  var detailBar = null;

  function onHashChange() {
    runHooks("route", window.location.hash).catch(function (e) { showError(e.message, "route"); });
    var id = selectedFromHash();
    var changed = id !== state.selected;
    state.selected = id;
    $("detail").hidden = id === null;
    state.rows.forEach(function (r, rid) { r.tr.classList.toggle("selected", rid === id); });
    if (changed && id !== null) {
      state.detailActionsKey = "";
      $("detail-missing").hidden = true;
      $("detail-body").hidden = false;
      setText($("detail-id"), id);
      var job = findJob(id);
      setText($("detail-name"), job ? job.name : "Loading…");
      $("workers-body").replaceChildren();
      $("dead-body").replaceChildren();
      refresh();
      $("detail").scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }

  function stat(label, value, cls) {
    return [h("div", { class: "stat" + (cls ? " " + cls : "") }, [
      h("dt", { text: label }), h("dd", { text: value })
    ])];
  }

  function renderDetailJob(job) {
    var c = job.counts || {};
    setText($("detail-name"), job.name || "(unnamed)");
    setText($("detail-id"), job.id);
    var badge = $("detail-state");
    setText(badge, job.state || "?");
    badge.className = "badge badge-" + (job.state || "unknown");
    $("detail-sealed").hidden = job.sealed !== false;

    if (!detailBar) {
      detailBar = createBar(true);
      $("detail-bar").replaceWith(detailBar.el);
      detailBar.el.id = "detail-bar";
    }
    updateBar(detailBar, c);

    var stats = $("detail-stats");
    stats.replaceChildren();
    [
      ["Progress", fmtPercent(percent(c)), ""],
      ["Total", fmtInt(num(c.total)), ""],
      ["Pending", fmtInt(num(c.pending)), "stat-pending"],
      ["Leased", fmtInt(num(c.leased)), "stat-leased"],
      ["Done", fmtInt(num(c.done)), "stat-done"],
      ["Dead", fmtInt(num(c.dead)), "stat-dead"],
      ["Rate", rateText(job), "stat-rate"],
      ["ETA", etaText(job), "stat-eta"],
      ["Makespan", job.makespan_seconds === null || job.makespan_seconds === undefined ? "—" :
        fmtDuration(job.makespan_seconds), "stat-makespan"],
      ["Outcome", job.outcome || "—", "stat-outcome"],   // success, partial, failed, cancelled
      ["Created", fmtTime(job.created_at), ""],
      ["Finished", job.finished_at ? fmtTime(job.finished_at) : "—", ""]
    ].forEach(function (s) { stat(s[0], s[1], s[2]).forEach(function (n) { stats.appendChild(n); }); });

    var settings = job.settings || {};
    var kv = $("detail-settings");
    kv.replaceChildren();
    [
      ["Batch size", fmtInt(settings.batch_size)],
      ["Lease seconds", fmtInt(settings.lease_seconds)],
      ["Max attempts", fmtInt(settings.max_attempts)],
      ["Priority", fmtInt(settings.priority)],
      ["Sealed", job.sealed === false ? "no" : "yes"]
    ].forEach(function (p) {
      kv.appendChild(h("dt", { text: p[0] }));
      kv.appendChild(h("dd", { text: p[1] }));
    });

    setText($("detail-params"), shortJSON(job.params === undefined ? {} : job.params, 20000));

    var key = actionsFor(job).join(",");
    if (key !== state.detailActionsKey) {
      state.detailActionsKey = key;
      renderActions($("detail-actions"), job);
    }
    $("btn-retry-dead").hidden = !(num(c.dead) > 0 && job.state !== "cancelled" && !job.archived);
  }

  /* Rate, ETA and makespan as the server computes them from the job's series. */
  function rateText(job) {
    if (job.state === "completed" || job.state === "cancelled") {
      return num(job.rate) > 0 ? fmtRate(job.rate) + " avg" : "—";
    }
    return job.state === "running" || num(job.rate) > 0 ? fmtRate(job.rate) : "—";
  }

  function renderWorkers(workers) {
    var body = $("workers-body");
    var rows = workers.slice().sort(function (a, b) {
      return String(a.worker).localeCompare(String(b.worker));
    }).map(function (w) {
      return h("tr", null, [
        cell("Worker", "mono", [String(w.worker === undefined ? "" : w.worker)]),
        cell("Done", "num", [fmtInt(w.done)]),
        cell("Failed", "num", [fmtInt(w.failed)]),
        cell("Expired", "num", [fmtInt(w.expired)]),
        cell("Leases", "num", [fmtInt(w.leases)]),
        h("td", { "data-label": "Last seen", title: fmtFullTime(w.last_seen) }, [fmtAgo(w.last_seen)]),
        cell("Rate", "num", [fmtRate(w.rate)])
      ]);
    });
    body.replaceChildren.apply(body, rows);
    $("workers-empty").hidden = rows.length > 0;
    $("workers-wrap").hidden = rows.length === 0;
    setText($("workers-count"), rows.length ? "(" + rows.length + ")" : "");
  }

  function renderDead(dead, total) {
    var body = $("dead-body");
    var shown = dead.slice(0, MAX_DEAD_ROWS);
    var rows = shown.map(function (d) {
      var err = d.error === undefined || d.error === null ? "" :
        (typeof d.error === "string" ? d.error : shortJSON(d.error, 2000));
      // The first line in the table; the whole text one click away.
      var first = err.split("\n")[0].slice(0, 200);
      var errCell = err.length > first.length
        ? h("details", { class: "error-full" }, [h("summary", { text: first + " …" }),
          h("pre", { class: "code", text: err })])
        : (err || "—");
      var id = state.selected;
      return h("tr", { "data-task": String(d.id) }, [
        cell("Task", "num mono", [h("button", { type: "button", class: "link task-link",
          text: String(d.id), onclick: function () { window.JM.inspect(d.id); } })]),
        cell("Attempts", "num", [fmtInt(d.attempts)]),
        h("td", { "data-label": "Error", class: "col-error" }, [errCell]),
        cell("Worker", "mono", [d.worker === undefined || d.worker === null ? "—" : String(d.worker)]),
        h("td", { "data-label": "At", title: fmtFullTime(d.at) }, [fmtTime(d.at)]),
        cell("", "col-actions", [h("button", { type: "button", class: "btn btn-sm dead-retry",
          text: "Retry", onclick: function (ev) { retryOne(id, d.id, ev.currentTarget); } })])
      ]);
    });
    body.replaceChildren.apply(body, rows);
    $("dead-empty").hidden = rows.length > 0;
    $("dead-wrap").hidden = rows.length === 0;
    var count = Math.max(total || 0, dead.length);
    setText($("dead-count"), count ? "(" + fmtInt(count) + ")" : "");
    var more = $("dead-more");
    more.hidden = count <= shown.length;
    setText(more, "Showing the first " + fmtInt(shown.length) + " of " + fmtInt(count) + ".");
  }

  async function retryOne(id, task, button) {
    button.disabled = true;
    try {
      await api("POST", jobPath(id) + "/dead/" + encodeURIComponent(task) + "/retry");
      clearError("action");
      toast("Task " + task + " re-queued");
    } catch (e) {
      showError("Retry of task " + task + " failed: " + e.message, "action");
    } finally {
      refresh();
    }
  }

  async function loadDetail() {
    var id = state.selected;
    if (id === null) return;
    var job = findJob(id);
    if (!job && state.archive) {
      // not among the jobs listed (an archived one, or listed on the other view)
      job = await api("GET", jobPath(id)).catch(function (e) { if (e.status === 404) return null; throw e; });
      if (state.selected !== id) return;
    }
    $("detail").classList.toggle("archived", !!(job && job.archived));
    $("detail-archived").hidden = !(job && job.archived);
    if (!job) {
      $("detail-missing").hidden = false;
      $("detail-body").hidden = true;
      $("detail-actions").replaceChildren();
      state.detailActionsKey = "";
      return;
    }
    $("detail-missing").hidden = true;
    $("detail-body").hidden = false;
    renderDetailJob(job);
    await runHooks("detail", job);
    var results = await Promise.all([
      job.archived ? { workers: [] } : api("GET", jobPath(id) + "/workers").catch(function (e) { return e; }),
      api("GET", jobPath(id) + "/dead?limit=" + MAX_DEAD_ROWS).catch(function (e) { return e; })
    ]);
    if (state.selected !== id) return;   // the operator moved on meanwhile
    var workers = results[0], dead = results[1];
    if (workers instanceof ApiError) {
      if (workers.status !== 404) throw workers;
    } else {
      renderWorkers(workers && Array.isArray(workers.workers) ? workers.workers : []);
    }
    if (dead instanceof ApiError) {
      if (dead.status !== 404) throw dead;
    } else {
      renderDead(dead && Array.isArray(dead.dead) ? dead.dead : [],
        typeof (dead && dead.count) === "number" ? dead.count : num(job.counts && job.counts.dead));
    }
  }

  // --------------------------------------------------------- refresh loop

  function schedule() {
    clearTimeout(state.timer);
    state.timer = null;
    if (document.hidden || state.userPaused) return;
    state.timer = setTimeout(refresh, REFRESH_MS);
  }

  async function refresh() {
    clearTimeout(state.timer);
    state.timer = null;
    if (state.inFlight) { state.again = true; return; }
    state.inFlight = true;
    try {
      var ready = loadReady();
      await loadJobs();
      var r = await ready;   // (it says whether there is an archive to look in)
      await loadDetail();
      clearError("refresh");
      if (r.ok) setConn(state.userPaused ? "idle" : "ok", state.userPaused ? "Updates paused" : "Live");
      else setConn("bad", r.text);
      setText($("updated"), "updated " + new Date().toLocaleTimeString());
    } catch (e) {
      var msg = e && e.message ? e.message : String(e);
      setConn("bad", e && e.status === 0 ? "Offline" : "Error");
      if (!(e && e.status === 401)) showError(msg, "refresh");
      else showError(msg + " — use the Token button to sign in.", "refresh");
    } finally {
      state.inFlight = false;
      if (state.again) { state.again = false; refresh(); } else schedule();
    }
  }

  function setUserPaused(paused) {
    state.userPaused = paused;
    setText($("btn-live"), paused ? "Resume updates" : "Pause updates");
    if (paused) { schedule(); setConn("idle", "Updates paused"); } else refresh();
  }

  // -------------------------------------------------------------- new job

  function readInt(form, name, label, errors) {
    var raw = form.elements[name].value.trim();
    if (raw === "") return undefined;
    var v = Number(raw);
    if (!Number.isInteger(v)) { errors.push(label + " must be a whole number."); return undefined; }
    return v;
  }

  function buildJobBody(form) {
    var errors = [];
    var body = {};
    var name = form.elements.name.value.trim();
    if (!name) errors.push("Name is required.");
    else if (name.length > 200) errors.push("Name must be at most 200 characters.");
    body.name = name;

    if (form.elements.source.value === "items") {
      var raw = form.elements.items.value.trim();
      var items;
      try { items = JSON.parse(raw); } catch (e) { errors.push("Items is not valid JSON: " + e.message); }
      if (items !== undefined && !Array.isArray(items)) errors.push("Items must be a JSON array.");
      body.tasks = { items: Array.isArray(items) ? items : [] };
    } else {
      var start = readInt(form, "start", "Start", errors);
      var stop = readInt(form, "stop", "Stop", errors);
      if (start === undefined) start = 0;
      if (stop === undefined) errors.push("Stop is required for a range.");
      else if (stop < start) errors.push("Stop must not be smaller than start.");
      body.tasks = { range: [start, stop] };
    }

    [["batch_size", "Batch size"], ["lease_seconds", "Lease seconds"],
      ["max_attempts", "Max attempts"], ["priority", "Priority"]].forEach(function (f) {
      var v = readInt(form, f[0], f[1], errors);
      if (v !== undefined) body[f[0]] = v;
    });

    var paramsRaw = form.elements.params.value.trim();
    if (paramsRaw) {
      var params;
      try { params = JSON.parse(paramsRaw); } catch (e) { errors.push("Params is not valid JSON: " + e.message); }
      if (params !== undefined) {
        if (params === null || typeof params !== "object" || Array.isArray(params)) {
          errors.push("Params must be a JSON object.");
        } else {
          body.params = params;
        }
      }
    }
    // Only an items job may stay open for more items; a range is always sealed.
    if (form.elements.source.value === "items") body.sealed = form.elements.sealed.checked;
    hooks.formBody.forEach(function (fn) { fn(form, body, errors); });
    return { body: body, errors: errors };
  }

  /* The message under the form, and, when the server names a field
   * ("body.batch_size: ..."), the same message next to that field. */
  function formError(message) {
    var form = $("form-new");
    fieldError(form, $("form-new-error"), message, function (name) {
      return name === "tasks" ? (form.elements.source.value === "items" ? "items" : "stop") : name;
    });
  }

  /* Any form: the message in its box, and next to the field the server's
   * "body.<field>: ..." names (fieldOf maps a body field to an input). */
  function fieldError(form, box, message, fieldOf) {
    setText(box, message || "");
    box.hidden = !message;
    Array.prototype.forEach.call(form.querySelectorAll(".field-error"), function (e) { e.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll(".field-invalid"), function (e) {
      e.classList.remove("field-invalid");
    });
    var m = message && /^body\.([A-Za-z0-9_]+)/.exec(message);
    if (!m) return;
    var input = form.elements[fieldOf ? fieldOf(m[1]) : m[1]];
    if (!input || !input.closest) return;
    var field = input.closest(".field") || input.parentNode;
    field.classList.add("field-invalid");
    field.appendChild(h("span", { class: "field-error", role: "alert", "data-for": m[1], text: message }));
  }

  function syncSource() {
    var form = $("form-new");
    var items = form.elements.source.value === "items";
    $("src-range").hidden = items;
    $("src-items").hidden = !items;
    $("sealed-field").hidden = !items;
  }

  function openNewJob() {
    formError("");
    syncSource();
    $("dlg-new").showModal();
    $("form-new").elements.name.focus();
  }

  async function submitNewJob(ev) {
    ev.preventDefault();
    var form = $("form-new");
    var built = buildJobBody(form);
    if (built.errors.length) { formError(built.errors.join(" ")); return; }
    formError("");
    var submit = $("form-new-submit");
    submit.disabled = true;
    try {
      var job = await api("POST", "/jobs", built.body);
      $("dlg-new").close();
      form.reset();
      syncSource();
      toast("Created “" + (job && job.name ? job.name : built.body.name) + "”");
      await refresh();
      if (job && job.id !== undefined) selectJob(String(job.id));
      await runHooks("created", job, form);
    } catch (e) {
      formError(e.message);
    } finally {
      submit.disabled = false;
    }
  }

  // ------------------------------------------------------------------ init

  function init() {
    $("btn-new").addEventListener("click", openNewJob);
    $("form-new").addEventListener("submit", submitNewJob);
    $("form-new-cancel").addEventListener("click", function () { $("dlg-new").close(); });
    Array.prototype.forEach.call($("form-new").elements.source, function (radio) {
      radio.addEventListener("change", syncSource);
    });
    $("btn-token").addEventListener("click", function () {
      askToken("Enter an admin token for this server.").then(function (saved) {
        if (saved) { clearError(); refresh(); }
      });
    });
    $("btn-live").addEventListener("click", function () { setUserPaused(!state.userPaused); });
    $("banner-error-close").addEventListener("click", function () { clearError(); });
    $("detail-close").addEventListener("click", function () { selectJob(null); });
    $("job-search").addEventListener("input", function (ev) {
      state.filter.text = ev.currentTarget.value.trim();
      renderJobs();
    });
    $("job-state").addEventListener("change", function (ev) {
      var was = archivedView();
      state.filter.state = ev.currentTarget.value;
      if (was !== archivedView()) { state.jobs = []; renderJobs(); refresh(); } else renderJobs();
    });
    $("btn-retry-dead").addEventListener("click", function (ev) {
      if (state.selected !== null) runAction(state.selected, "retry", ev.currentTarget);
    });
    window.addEventListener("hashchange", onHashChange);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) schedule();   // clears the timer; nothing is fetched while hidden
      else if (!state.userPaused) refresh();
    });
    onHashChange();
    refresh();
  }

  window.JM = {
    $: $, h: h, api: api, ApiError: ApiError, jobPath: jobPath, setText: setText, num: num,
    fmtInt: fmtInt, fmtRate: fmtRate, fmtTime: fmtTime, fmtFullTime: fmtFullTime, fmtAgo: fmtAgo,
    fmtDuration: fmtDuration, shortJSON: shortJSON, toast: toast, showError: showError,
    clearError: clearError, refresh: refresh, findJob: findJob, selectJob: selectJob, cell: cell,
    hooks: hooks, selected: function () { return state.selected; }, token: getToken,
    fieldError: fieldError, archive: function () { return state.archive; }
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
