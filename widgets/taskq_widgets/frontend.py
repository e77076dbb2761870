"""The browser side of :class:`~taskq_widgets.QueueMonitor`: an anywidget ES module and its
CSS, inline strings (no build step, no CDN, nothing fetched at run time).

The DOM it draws, for tests and styling: a root ``div.taskq-monitor``; headline figures as
``[data-field=<name>]`` elements whose text is the number (an en dash for no data); the
depth bars in ``.taskq-depth``; sparklines as ``svg.taskq-spark[data-series=<name>]``;
running tasks in ``table.taskq-running``; workers in ``table.taskq-workers`` with one
``tr[data-worker=<id>]`` each; errors in ``.taskq-error``.
"""

from __future__ import annotations

MONITOR_ESM = r"""
const HEADLINE = [
  ["pending", "pending"], ["queued", "queued"], ["running", "running"],
  ["scheduled", "scheduled"], ["dead", "dead"], ["succeeded", "succeeded"],
  ["failed", "failed"], ["throughput", "throughput /s"], ["p50_ms", "P50 ms"],
  ["p99_ms", "P99 ms"],
];
const HINTS = {
  pending: "queued + scheduled + running",
  queued: "waiting to be claimed",
  running: "leased by a worker now",
  scheduled: "delayed, or waiting for a retry",
  dead: "in the dead-letter queue",
  succeeded: "since the queue was created",
  failed: "failed attempts since the queue was created (retried or dead)",
  throughput: "tasks succeeded per second over the window",
  p50_ms: "median latency over the window (worst queue)",
  p99_ms: "99th percentile latency over the window (worst queue)",
};
const SERIES = [["throughput", "throughput /s"], ["p50_ms", "P50 ms"], ["p99_ms", "P99 ms"], ["pending", "pending"]];
const WATCHED = ["pending", "queued", "running", "scheduled", "dead", "succeeded", "failed", "throughput",
  "p50_ms", "p99_ms", "depth_by_priority", "running_tasks", "workers", "history", "error", "polling",
  "queue_names", "updates", "window_s", "metric"];

function fmt(v, digits) {
  if (v === null || v === undefined) return "\u2013";
  if (Number.isInteger(v)) return String(v);
  return Number(v).toFixed(digits === undefined ? 1 : digits);
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(v) {
  if (v === null || v === undefined) return "\u2013";
  return v >= 10000 ? (v / 1000).toFixed(0) + " s" : v >= 1000 ? (v / 1000).toFixed(1) + " s" : v + " ms";
}

function sparkline(points, key) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 160, h = 32;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "taskq-spark");
  svg.setAttribute("data-series", key);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  const values = points.map((p) => p[key]);
  const present = values.filter((v) => v !== null && v !== undefined);
  const max = present.length ? Math.max(...present, 1e-9) : 1;
  const n = values.length;
  const coords = [];
  values.forEach((v, i) => {
    if (v === null || v === undefined) return;
    const x = n > 1 ? (i / (n - 1)) * (w - 2) + 1 : w / 2;
    const y = h - 2 - (v / max) * (h - 4);
    coords.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", coords.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "1.5");
  svg.appendChild(line);
  return svg;
}

function table(cls, columns, rows, cells) {
  const t = el("table", cls);
  const head = el("tr");
  columns.forEach((c) => head.appendChild(el("th", "", c)));
  t.appendChild(head);
  rows.forEach((r) => {
    const tr = el("tr");
    cells(r).forEach((c) => tr.appendChild(el("td", "", c)));
    if (cls === "taskq-workers") tr.setAttribute("data-worker", r.id);
    if (cls === "taskq-workers") tr.classList.add("health-" + r.health);
    t.appendChild(tr);
  });
  return t;
}

function render({ model, el: host }) {
  const root = el("div", "taskq-monitor");
  const title = el("div", "taskq-title");
  const error = el("div", "taskq-error");
  const tiles = el("div", "taskq-tiles");
  const fields = {};
  for (const [key, label] of HEADLINE) {
    const tile = el("div", "taskq-tile");
    tile.title = HINTS[key] || "";
    const value = el("span", "taskq-value");
    value.setAttribute("data-field", key);
    fields[key] = value;
    tile.appendChild(value);
    tile.appendChild(el("span", "taskq-label", label));
    tiles.appendChild(tile);
  }
  const middle = el("div", "taskq-middle");
  const depth = el("div", "taskq-depth");
  const sparks = el("div", "taskq-sparks");
  middle.appendChild(depth);
  middle.appendChild(sparks);
  const running = el("div", "taskq-running-box");
  const workers = el("div", "taskq-workers-box");
  [title, error, tiles, middle, running, workers].forEach((n) => root.appendChild(n));
  host.appendChild(root);

  function update() {
    const names = model.get("queue_names") || [];
    const state = model.get("polling") ? "live" : "paused";
    title.textContent = `taskq \u00b7 ${names.length ? names.join(", ") : "no queues yet"} \u00b7 ${state}` +
      ` \u00b7 update ${model.get("updates")} \u00b7 rates and ${model.get("metric")} latency over the last` +
      ` ${model.get("window_s")} s`;
    const err = model.get("error");
    error.textContent = err || "";
    error.style.display = err ? "block" : "none";
    for (const [key] of HEADLINE) {
      fields[key].textContent = fmt(model.get(key), key === "throughput" ? 1 : 1);
    }
    const d = model.get("depth_by_priority") || {};
    const most = Math.max(1, ...Object.values(d));
    depth.replaceChildren(el("div", "taskq-caption", "queued by priority"));
    for (let p = 10; p >= 1; p--) {
      const n = d[String(p)] || 0;
      const row = el("div", "taskq-bar-row");
      row.setAttribute("data-priority", String(p));
      row.appendChild(el("span", "taskq-bar-label", String(p)));
      const bar = el("span", "taskq-bar");
      bar.style.width = `${(100 * n) / most}%`;
      const track = el("span", "taskq-bar-track");
      track.appendChild(bar);
      row.appendChild(track);
      row.appendChild(el("span", "taskq-bar-count", String(n)));
      depth.appendChild(row);
    }
    const history = model.get("history") || [];
    sparks.replaceChildren();
    for (const [key, label] of SERIES) {
      const box = el("div", "taskq-spark-box");
      box.appendChild(el("span", "taskq-caption", `${label} (last ${history.length} s)`));
      box.appendChild(sparkline(history, key));
      sparks.appendChild(box);
    }
    const rt = model.get("running_tasks") || [];
    running.replaceChildren(el("div", "taskq-caption", `running (${model.get("running")})`));
    if (rt.length) {
      const columns = ["task", "name", "queue", "worker", "attempt", "lease age", "lease left"];
      running.appendChild(table("taskq-running", columns, rt, (r) =>
        [r.id, r.name, r.queue, r.worker, String(r.attempt), ms(r.age_ms), ms(r.lease_left_ms)]));
    }
    const ws = model.get("workers") || [];
    workers.replaceChildren(el("div", "taskq-caption", `workers (${ws.length})`));
    if (ws.length) {
      const columns = ["worker", "health", "pid", "concurrency", "processed", "failed", "current tasks"];
      workers.appendChild(table("taskq-workers", columns, ws, (w) =>
        [w.id, w.health, fmt(w.pid), fmt(w.concurrency), fmt(w.processed), fmt(w.failed),
         w.current.length ? w.current.join(", ") : "\u2013"]));
    }
  }

  // One message from the kernel sets many traits at once: redraw once, after all of them.
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    Promise.resolve().then(() => {
      scheduled = false;
      update();
    });
  };
  const handlers = WATCHED.map((name) => {
    const cb = schedule;
    model.on(`change:${name}`, cb);
    return [name, cb];
  });
  update();
  return () => handlers.forEach(([name, cb]) => model.off(`change:${name}`, cb));
}

export default { render };
"""

MONITOR_CSS = """
.taskq-monitor { font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px;
  color: var(--jp-ui-font-color1, #222); padding: 6px; border: 1px solid var(--jp-border-color2, #ddd);
  border-radius: 4px; }
.taskq-monitor .taskq-title { font-weight: 600; margin-bottom: 4px; }
.taskq-monitor .taskq-error { display: none; background: #fde8e8; color: #9b1c1c; padding: 4px 6px; margin: 4px 0;
  border-radius: 3px; white-space: pre-wrap; }
.taskq-monitor .taskq-tiles { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 6px; }
.taskq-monitor .taskq-tile { display: flex; flex-direction: column; align-items: center; min-width: 64px;
  padding: 3px 6px; background: var(--jp-layout-color2, #f4f4f4); border-radius: 3px; }
.taskq-monitor .taskq-value { font-size: 16px; font-variant-numeric: tabular-nums; }
.taskq-monitor .taskq-label, .taskq-monitor .taskq-caption { color: var(--jp-ui-font-color2, #666); font-size: 11px; }
.taskq-monitor .taskq-middle { display: flex; flex-wrap: wrap; gap: 16px; }
.taskq-monitor .taskq-depth { min-width: 220px; }
.taskq-monitor .taskq-bar-row { display: flex; align-items: center; gap: 4px; height: 13px; }
.taskq-monitor .taskq-bar-label { width: 16px; text-align: right; }
.taskq-monitor .taskq-bar-track { flex: 1; min-width: 140px; height: 9px; background: rgba(128, 128, 128, 0.12); }
.taskq-monitor .taskq-bar { display: block; height: 100%; background: #3b82f6; }
.taskq-monitor .taskq-bar-count { width: 40px; font-variant-numeric: tabular-nums; }
.taskq-monitor .taskq-sparks { display: grid; grid-template-columns: repeat(2, auto); gap: 2px 12px; color: #3b82f6; }
.taskq-monitor .taskq-spark-box { display: flex; flex-direction: column; }
.taskq-monitor table { border-collapse: collapse; margin-top: 2px; font-variant-numeric: tabular-nums; }
.taskq-monitor th, .taskq-monitor td { padding: 1px 6px; border-bottom: 1px solid var(--jp-border-color2, #eee);
  text-align: left; }
.taskq-monitor tr.health-stale td { color: #b45309; }
.taskq-monitor tr.health-gone td { color: #9b1c1c; text-decoration: line-through; }
"""

__all__ = ["MONITOR_CSS", "MONITOR_ESM"]
