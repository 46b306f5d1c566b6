/* jobmaster throughput chart: hand-drawn SVG, no library.
 *
 * Measured against the smallest kept charting library that fits (uPlot
 * 1.6.32: 51,081 bytes minified + 1,857 bytes of CSS), this file is under
 * 5 KB unminified; it draws one thing (tasks done and attempts failed per
 * second, per bucket of GET /jobs/<id>/series) and needs nothing else.
 * Under the page's CSP (no inline style) it only sets SVG attributes.
 */
(function () {
  "use strict";

  var NS = null;  // the SVG namespace, read from the page's own <svg>: no URL here
  var W = 600, H = 160, PAD_L = 44, PAD_R = 8, PAD_T = 10, PAD_B = 22;

  function el(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmtY(v) {
    if (v >= 1000) return Math.round(v).toLocaleString();
    if (v >= 10) return v.toFixed(0);
    return v.toFixed(v >= 1 ? 1 : 2);
  }

  function clock(epoch) {
    return new Date(epoch * 1000).toLocaleTimeString(undefined,
      { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /* Points of one series as "x,y ..." for a polyline (a step per bucket). */
  function path(values, dt, x, y) {
    var pts = [];
    values.forEach(function (v, i) {
      var yv = y(v / dt);
      pts.push(x(i) + "," + yv, x(i + 1) + "," + yv);
    });
    return pts.join(" ");
  }

  /* Draw `series` (the GET .../series document) into the <svg> `container`. */
  function draw(container, series) {
    var done = series.done || [], failed = series.failed || [];
    var dt = series.interval_seconds || 10;
    var n = Math.max(1, done.length);
    var peak = 0;
    for (var i = 0; i < done.length; i++) {
      peak = Math.max(peak, done[i] / dt, (failed[i] || 0) / dt);
    }
    var top = peak > 0 ? peak * 1.1 : 1;
    var x = function (i) { return (PAD_L + i / n * (W - PAD_L - PAD_R)).toFixed(1); };
    var y = function (v) { return (PAD_T + (1 - v / top) * (H - PAD_T - PAD_B)).toFixed(1); };
    var totalDone = done.reduce(function (a, b) { return a + b; }, 0);
    var totalFailed = failed.reduce(function (a, b) { return a + b; }, 0);

    NS = container.namespaceURI;
    var svg = container;
    svg.replaceChildren();
    [["viewBox", "0 0 " + W + " " + H], ["data-points", done.length], ["data-done", totalDone],
      ["data-failed", totalFailed]].forEach(function (a) { svg.setAttribute(a[0], String(a[1])); });
    svg.appendChild(el("title", {}, "Done " + totalDone + ", failed " + totalFailed +
      " over " + done.length + " × " + dt + " s"));
    [0, 0.5, 1].forEach(function (f) {
      var yy = y(top * f);
      svg.appendChild(el("line", { x1: PAD_L, x2: W - PAD_R, y1: yy, y2: yy, class: "chart-grid" }));
      svg.appendChild(el("text", { x: PAD_L - 4, y: Number(yy) + 4, class: "chart-label chart-y" },
        fmtY(top * f) + "/s"));
    });
    var start = series.start || 0;
    svg.appendChild(el("text", { x: PAD_L, y: H - 6, class: "chart-label" }, clock(start)));
    svg.appendChild(el("text", { x: W - PAD_R, y: H - 6, class: "chart-label chart-end" },
      clock(start + done.length * dt)));
    if (done.length) {
      svg.appendChild(el("polyline", { points: path(done, dt, x, y), class: "chart-done" }));
      svg.appendChild(el("polyline", { points: path(failed, dt, x, y), class: "chart-failed" }));
    } else {
      svg.appendChild(el("text", { x: W / 2, y: H / 2, class: "chart-label chart-empty" },
        "no activity yet"));
    }
  }

  window.JMChart = { draw: draw };
})();
