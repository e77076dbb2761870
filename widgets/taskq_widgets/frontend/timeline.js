// The browser side of taskq_widgets.Timeline: an anywidget ES module (plain JavaScript with JSDoc
// types, no build step, nothing fetched at run time). A Gantt chart of the last window_s
// seconds: one row per worker slot, a bar per attempt coloured by outcome, a dashed line from a
// retried or lost attempt to the task's next one (the backoff, or the lease running out), and
// a tick joining the bars one claim started together (a batch).
//
// DOM for tests: root div.taskq-timeline (data-bars: bars drawn, data-draws: redraws);
// rect.taskq-bar[data-task][data-attempt][data-outcome][data-row]; line.taskq-gap[data-task];
// line.taskq-claim; row labels text.taskq-row[data-row].

/**
 * @typedef {{id: string, attempt: number, priority: number | null, queue: string, row: string,
 *   start_ms: number, end_ms: number | null, outcome: string, claim: string}} Bar
 * @typedef {{bars: Bar[], rows: string[], now_ms: number, window_s: number, error: string}} Model
 */

const NS = "http://www.w3.org/2000/svg";
const W = 780;
const LABEL_W = 150;
const ROW_H = 18;
const AXIS_H = 20;
const REDRAW_MS = 100;
/** @type {Record<string, string>} */
const COLOURS = {
  running: "#4e79a7", succeeded: "#59a14f", retried: "#f28e2b", dead: "#e15759",
  cancelled: "#9c9c9c", released: "#b07aa1", lost: "#000000",
};

/**
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | number>} attrs
 * @param {string} [text]
 */
function svg(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @param {import("@anywidget/types").RenderProps<Model>} props */
function render({ model, el: host }) {
  const root = document.createElement("div");
  root.className = "taskq-timeline";
  const legend = document.createElement("div");
  legend.className = "taskq-flow-controls";
  for (const [outcome, c] of Object.entries(COLOURS)) {
    const item = document.createElement("span");
    item.className = "taskq-legend";
    item.innerHTML = `<i style="background:${c}"></i>`;
    item.append(outcome === "lost" ? "lost (lease expired)" : outcome);
    legend.appendChild(item);
  }
  const area = svg("svg", { class: "taskq-flow", width: W, height: 100 });
  const error = document.createElement("div");
  error.className = "taskq-error";
  root.append(legend, area, error);
  host.appendChild(root);

  let receivedWall = performance.now();
  let draws = 0;

  function draw() {
    const bars = model.get("bars") || [];
    const rows = model.get("rows") || [];
    const span = (model.get("window_s") || 20) * 1000;
    const now = (model.get("now_ms") || 0) + (performance.now() - receivedWall);
    const start = now - span;
    const scale = (W - LABEL_W - 10) / span;
    const x = (/** @type {number} */ t) => LABEL_W + Math.max(0, t - start) * scale;
    const height = AXIS_H + Math.max(1, rows.length) * ROW_H + 4;
    area.setAttribute("height", String(height));
    area.setAttribute("viewBox", `0 0 ${W} ${height}`);
    /** @type {Map<string, number>} */
    const top = new Map(rows.map((r, i) => [r, AXIS_H + i * ROW_H]));
    const parts = [];
    for (let s = 0; s <= span / 1000; s += span > 30000 ? 10 : span > 10000 ? 5 : 1) {
      const tx = W - 10 - s * 1000 * scale;
      parts.push(svg("line", { x1: tx, x2: tx, y1: AXIS_H - 4, y2: height, class: "taskq-grid" }),
        svg("text", { x: tx, y: 12, class: "taskq-axis", "text-anchor": "middle" }, s ? `-${s}s` : "now"));
    }
    for (const row of rows) {
      const worker = row.slice(0, row.lastIndexOf("#"));
      parts.push(svg("text", { x: 2, y: (top.get(row) || 0) + 13, class: "taskq-row", "data-row": row },
        `${worker.slice(-14)} #${row.slice(row.lastIndexOf("#") + 1)}`));
    }
    /** @type {Map<string, Bar[]>} */
    const byTask = new Map();
    /** @type {Map<string, Bar[]>} */
    const byClaim = new Map();
    for (const b of bars) {
      const y = top.get(b.row);
      if (y === undefined) continue;
      const end = b.end_ms ?? now;
      if (end < start) continue;
      const rect = svg("rect", { x: x(b.start_ms).toFixed(1), y: y + 2, height: ROW_H - 4, rx: 2,
        width: Math.max(1.5, x(end) - x(b.start_ms)).toFixed(1), fill: COLOURS[b.outcome] || "#888",
        class: "taskq-bar", "data-task": b.id, "data-attempt": b.attempt, "data-outcome": b.outcome,
        "data-row": b.row });
      rect.appendChild(svg("title", {}, `${b.id} (${b.queue}) P${b.priority ?? "?"} attempt ${b.attempt}: ` +
        `${b.outcome}, ${((end - b.start_ms) / 1000).toFixed(2)} s`));
      parts.push(rect);
      byTask.set(b.id, [...(byTask.get(b.id) || []), b]);
      byClaim.set(b.claim, [...(byClaim.get(b.claim) || []), b]);
    }
    for (const [id, attempts] of byTask) {
      attempts.sort((a, b) => a.attempt - b.attempt);
      for (let i = 1; i < attempts.length; i++) {
        const a = attempts[i - 1];
        const b = attempts[i];
        if (a.end_ms === null) continue;
        parts.push(svg("line", { x1: x(a.end_ms), y1: (top.get(a.row) || 0) + ROW_H / 2, x2: x(b.start_ms),
          y2: (top.get(b.row) || 0) + ROW_H / 2, class: "taskq-gap", "data-task": id }));
      }
    }
    for (const group of byClaim.values()) {
      if (group.length < 2) continue;
      const ys = group.map((b) => top.get(b.row) || 0);
      const cx = x(group[0].start_ms);
      parts.push(svg("line", { x1: cx, x2: cx, y1: Math.min(...ys) + 1, y2: Math.max(...ys) + ROW_H - 1,
        class: "taskq-claim" }));
    }
    area.replaceChildren(...parts);
    draws += 1;
    root.dataset.bars = String(area.querySelectorAll("rect.taskq-bar").length);
    root.dataset.draws = String(draws);
  }

  const onData = () => {
    receivedWall = performance.now();
  };
  const onError = () => {
    error.textContent = model.get("error") || "";
  };
  model.on("change:now_ms", onData);
  model.on("change:error", onError);
  onError();
  draw();
  const timer = setInterval(draw, REDRAW_MS);
  return () => {
    clearInterval(timer);
    model.off("change:now_ms", onData);
    model.off("change:error", onError);
  };
}

export default { render };
