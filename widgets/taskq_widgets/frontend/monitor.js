// The browser side of taskq_widgets.QueueMonitor: an anywidget ES module. Plain JavaScript with
// JSDoc types, checked by `npm run lint` and `npm run typecheck` in widgets/; no build step, no
// CDN, nothing fetched at run time.
//
// The DOM it draws, for tests and styling: a root div.taskq-monitor; headline figures as
// [data-field=<name>] elements whose text is the number (an en dash for no data); the depth bars
// in .taskq-depth; sparklines as svg.taskq-spark[data-series=<name>]; running tasks in
// table.taskq-running; workers in table.taskq-workers with one tr[data-worker=<id>] each;
// schedules in table.taskq-schedules (tr[data-schedule=<name>]) and rate limits in
// table.taskq-limits; errors in .taskq-error.

/**
 * @typedef {{t_ms: number, throughput: number, p50_ms: number | null, p99_ms: number | null,
 *   pending: number}} Point
 * @typedef {{id: string, name: string, queue: string, worker: string, attempt: number,
 *   priority: number, age_ms: number | null, lease_left_ms: number | null,
 *   progress: string}} RunningRow
 * @typedef {{id: string, health: string, host: string, pid: number | null, queues: string[],
 *   concurrency: number | null, processed: number | null, failed: number | null,
 *   current: string[], heartbeat_age_ms: number | null}} WorkerRow
 * @typedef {{name: string, task: string, queue: string, every: string, paused: boolean,
 *   last_fire_ms: number | null, next_fire_in_ms: number | null}} ScheduleRow
 * @typedef {{queue: string, limiter: string, limit: string, open_in_ms: number | null}} LimiterRow
 * @typedef {"pending" | "queued" | "running" | "scheduled" | "dead" | "succeeded" | "failed"
 *   | "throughput" | "p50_ms" | "p99_ms"} Headline
 * @typedef {"throughput" | "p50_ms" | "p99_ms" | "pending"} Series
 * @typedef {{
 *   pending: number, queued: number, running: number, scheduled: number, dead: number,
 *   succeeded: number, failed: number, throughput: number, p50_ms: number | null,
 *   p99_ms: number | null, depth_by_priority: Record<string, number>,
 *   running_tasks: RunningRow[], workers: WorkerRow[], history: Point[], error: string,
 *   schedules: ScheduleRow[], rate_limits: LimiterRow[],
 *   polling: boolean, queue_names: string[], updates: number, window_s: number, metric: string,
 * }} Model
 */

/** @type {[Headline, string][]} */
const HEADLINE = [
  ["pending", "pending"], ["queued", "queued"], ["running", "running"],
  ["scheduled", "scheduled"], ["dead", "dead"], ["succeeded", "succeeded"],
  ["failed", "failed"], ["throughput", "throughput /s"], ["p50_ms", "P50 ms"],
  ["p99_ms", "P99 ms"],
];
/** @type {Record<Headline, string>} */
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
/** @type {[Series, string][]} */
const SERIES = [["throughput", "throughput /s"], ["p50_ms", "P50 ms"], ["p99_ms", "P99 ms"], ["pending", "pending"]];
/** @type {(keyof Model)[]} */
const WATCHED = ["pending", "queued", "running", "scheduled", "dead", "succeeded", "failed", "throughput",
  "p50_ms", "p99_ms", "depth_by_priority", "running_tasks", "workers", "history", "error", "polling",
  "queue_names", "updates", "window_s", "metric", "schedules", "rate_limits"];
const DASH = "\u2013";

/**
 * A number for a tile or a cell: integers as they are, others with one decimal.
 * @param {number | null | undefined} v
 * @returns {string}
 */
function fmt(v) {
  if (v === null || v === undefined) return DASH;
  if (Number.isInteger(v)) return String(v);
  return Number(v).toFixed(1);
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [cls]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A duration in milliseconds, in seconds from one second up.
 * @param {number | null | undefined} v
 * @returns {string}
 */
function ms(v) {
  if (v === null || v === undefined) return DASH;
  if (v >= 10000) return (v / 1000).toFixed(0) + " s";
  if (v >= 1000) return (v / 1000).toFixed(1) + " s";
  return v + " ms";
}

/**
 * @param {Point[]} points
 * @param {Series} key
 * @returns {SVGSVGElement}
 */
function sparkline(points, key) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 160, h = 32;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "taskq-spark");
  svg.setAttribute("data-series", key);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(h));
  const values = points.map((p) => p[key]);
  /** @type {number[]} */
  const present = values.filter((v) => v !== null && v !== undefined);
  const max = present.length ? Math.max(...present, 1e-9) : 1;
  const n = values.length;
  /** @type {string[]} */
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

/**
 * A table with a header row and one row per item.
 * @template T
 * @param {string} cls
 * @param {string[]} columns
 * @param {T[]} rows
 * @param {(row: T) => string[]} cells
 * @param {(tr: HTMLTableRowElement, row: T) => void} [mark] sets attributes on each row
 * @returns {HTMLTableElement}
 */
function table(cls, columns, rows, cells, mark) {
  const t = el("table", cls);
  const head = el("tr");
  columns.forEach((c) => head.appendChild(el("th", "", c)));
  t.appendChild(head);
  rows.forEach((r) => {
    const tr = el("tr");
    cells(r).forEach((c) => tr.appendChild(el("td", "", c)));
    if (mark) mark(tr, r);
    t.appendChild(tr);
  });
  return t;
}

/** @type {import("@anywidget/types").Render<Model>} */
function render({ model, el: host }) {
  const root = el("div", "taskq-monitor");
  const title = el("div", "taskq-title");
  const error = el("div", "taskq-error");
  const tiles = el("div", "taskq-tiles");
  /** @type {Partial<Record<Headline, HTMLSpanElement>>} */
  const fields = {};
  for (const [key, label] of HEADLINE) {
    const tile = el("div", "taskq-tile");
    tile.title = HINTS[key];
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
  const periodic = el("div", "taskq-schedules-box");
  [title, error, tiles, middle, running, workers, periodic].forEach((n) => root.appendChild(n));
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
      const field = fields[key];
      if (field) field.textContent = fmt(model.get(key));
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
      const columns = ["task", "name", "queue", "worker", "attempt", "lease age", "lease left", "progress"];
      running.appendChild(table("taskq-running", columns, rt, (r) =>
        [r.id, r.name, r.queue, r.worker, String(r.attempt), ms(r.age_ms), ms(r.lease_left_ms), r.progress || ""]));
    }
    const ws = model.get("workers") || [];
    workers.replaceChildren(el("div", "taskq-caption", `workers (${ws.length})`));
    if (ws.length) {
      const columns = ["worker", "health", "pid", "concurrency", "processed", "failed", "current tasks"];
      const cells = (/** @type {WorkerRow} */ w) =>
        [w.id, w.health, fmt(w.pid), fmt(w.concurrency), fmt(w.processed), fmt(w.failed),
          w.current.length ? w.current.join(", ") : DASH];
      workers.appendChild(table("taskq-workers", columns, ws, cells, (tr, w) => {
        tr.setAttribute("data-worker", w.id);
        tr.classList.add("health-" + w.health);
      }));
    }
    const ss = model.get("schedules") || [];
    const ls = model.get("rate_limits") || [];
    periodic.replaceChildren();
    if (ss.length) {
      periodic.appendChild(el("div", "taskq-caption", `schedules (${ss.length})`));
      const cells = (/** @type {ScheduleRow} */ s) =>
        [s.paused ? `${s.name} (paused)` : s.name, s.task, s.queue, s.every,
          s.last_fire_ms === null ? DASH : new Date(s.last_fire_ms).toLocaleTimeString(), ms(s.next_fire_in_ms)];
      periodic.appendChild(table("taskq-schedules", ["schedule", "task", "queue", "when", "last fire", "next in"],
        ss, cells, (tr, s) => tr.setAttribute("data-schedule", s.name)));
    }
    if (ls.length) {
      periodic.appendChild(el("div", "taskq-caption", `rate limits (${ls.length})`));
      const cells = (/** @type {LimiterRow} */ r) => [r.queue, r.limiter, r.limit, ms(r.open_in_ms)];
      periodic.appendChild(table("taskq-limits", ["queue", "limiter", "limit", "opens in"], ls, cells));
    }
  }

  // One message from the kernel sets many traits at once: redraw once, after all of them.
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    void Promise.resolve().then(() => {
      scheduled = false;
      update();
    });
  };
  for (const name of WATCHED) model.on(`change:${name}`, schedule);
  update();
  return () => {
    for (const name of WATCHED) model.off(`change:${name}`, schedule);
  };
}

export default { render };
