// The browser side of taskq_widgets.StateFlow: an anywidget ES module (plain JavaScript with
// JSDoc types, no build step, nothing fetched at run time).
//
// The kernel sends batches of moves ([t_ms, task, event, from, to, priority, attempt, worker,
// queue]) with the counts after them. They wait in a buffer here and are played at the chosen
// speed: pause holds them, step plays one. Tokens (circle.taskq-token[data-task]) glide from
// node to node, coloured by priority; a <title> tells the task on hover.
//
// DOM for tests: root div.taskq-stateflow with data-played (moves played) and data-frames
// (animation frames drawn); svg.taskq-flow; nodes g[data-node=<node>] with their count in
// .taskq-count; edge counts text[data-edge=<from>><to>]; [data-field=sampling|buffered|rate].

/**
 * @typedef {[number, string, string, string, string, number | null, number | null, string | null,
 *   string]} Move
 * @typedef {{seq: number, moves: Move[], occupancy: Record<string, number>,
 *   edges: Record<string, number>, seen: number, sampling: boolean, rate: number}} Batch
 * @typedef {{move: Move, el: SVGCircleElement, t0: number, from: [number, number],
 *   to: [number, number]}} Token
 * @typedef {{batch: Batch, move: Move | null}} Item
 * @typedef {{batch: Batch, slots: string[], error: string}} Model
 */

const NS = "http://www.w3.org/2000/svg";
const W = 780;
const LANE_H = 22;
const TOP = 30;
const MAX_BUFFER = 20000;
const MAX_TOKENS = 300;
const GLIDE_MS = 700;
const SPEEDS = [0.1, 0.25, 0.5, 1, 2, 4];
/** Priority 1..10 -> a colour, cool (low) to hot (high). */
const PRIORITY_COLOURS = ["#5e4fa2", "#3288bd", "#66c2a5", "#abdda4", "#e6f598", "#fee08b", "#fdae61",
  "#f46d43", "#d53e4f", "#9e0142"];
const COL = { src: 20, wait: 110, lanes: 300, slots: 520, ends: 720 };
/** Where the edges' counts are written: [from>to, x, y offset from the middle]. */
const EDGE_LABELS = [
  ["new>queued", 205, -60], ["new>scheduled", 60, -110], ["scheduled>queued", 205, -110],
  ["backoff>queued", 205, 100], ["queued>running", 410, 0], ["running>succeeded", 620, -100],
  ["running>backoff", 410, 130], ["running>queued", 410, 60], ["running>cancelled", 620, -40],
  ["running>dead", 620, 20], ["dead>queued", 520, 150], ["dead>purged", COL.ends, 64],
];

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

/** @param {number | null} p */
function colour(p) {
  return PRIORITY_COLOURS[Math.min(10, Math.max(1, p ?? 5)) - 1];
}

/** @param {import("@anywidget/types").RenderProps<Model>} props */
function render({ model, el: host }) {
  const root = document.createElement("div");
  root.className = "taskq-stateflow";
  const bar = document.createElement("div");
  bar.className = "taskq-flow-controls";
  const pause = document.createElement("button");
  pause.textContent = "pause";
  const step = document.createElement("button");
  step.textContent = "step";
  step.disabled = true;
  const speed = document.createElement("select");
  for (const s of SPEEDS) speed.appendChild(new Option(`${s}\u00d7`, String(s), s === 1, s === 1));
  const status = document.createElement("span");
  status.className = "taskq-flow-status";
  bar.append(pause, step, speed, status);
  const area = svg("svg", { class: "taskq-flow", width: W, height: 300 });
  const statics = svg("g", {});
  const tokenLayer = svg("g", {});
  area.append(statics, tokenLayer);
  const error = document.createElement("div");
  error.className = "taskq-error";
  root.append(bar, area, error);
  host.appendChild(root);

  /** @type {Map<string, [number, number]>} */
  let where = new Map();
  /** @type {Map<string, SVGTextElement>} */
  let counts = new Map();
  /** @type {Map<string, SVGTextElement>} */
  let edgeText = new Map();
  let middle = 150;

  /** @param {string} node @param {number} x @param {number} y @param {number} w @param {string} label */
  function box(node, x, y, w, label) {
    const g = svg("g", { "data-node": node });
    g.append(svg("rect", { x: x - w / 2, y: y - 9, width: w, height: 18, rx: 4, class: "taskq-node" }),
      svg("text", { x: x - w / 2 + 4, y: y + 4, class: "taskq-label" }, label));
    const count = svg("text", { x: x + w / 2 - 4, y: y + 4, class: "taskq-count", "text-anchor": "end" }, "0");
    g.append(count);
    statics.appendChild(g);
    where.set(node, [x, y]);
    counts.set(node, count);
  }

  function layout() {
    const slots = model.get("slots") || [];
    const rows = Math.max(10, slots.length);
    const height = TOP + rows * LANE_H + 40;
    middle = TOP + (rows * LANE_H) / 2;
    area.setAttribute("height", String(height));
    area.setAttribute("viewBox", `0 0 ${W} ${height}`);
    statics.replaceChildren();
    where = new Map();
    counts = new Map();
    edgeText = new Map();
    for (const [x, title] of [[COL.wait, "waiting"], [COL.lanes, "queued (by priority)"],
      [COL.slots, "running (worker slots)"], [COL.ends, "ended"]]) {
      statics.appendChild(svg("text", { x, y: 14, class: "taskq-heading", "text-anchor": "middle" }, String(title)));
    }
    where.set("new", [COL.src, middle]);
    where.set("running", [COL.slots, middle]);
    box("scheduled", COL.wait, middle - 80, 120, "scheduled");
    box("backoff", COL.wait, middle + 80, 120, "retry backoff");
    for (let p = 10; p >= 1; p--) box(`q${p}`, COL.lanes, TOP + (10 - p) * LANE_H + 10, 140, `P${p}`);
    slots.forEach((name, i) => {
      const [worker, n] = [name.slice(0, name.lastIndexOf("#")), name.slice(name.lastIndexOf("#") + 1)];
      box(name, COL.slots, TOP + i * LANE_H + 10, 170, `${worker.slice(-10)} #${n}`);
    });
    // The ends, top to bottom; purged sits under dead, the one place a task reaches it from.
    box("succeeded", COL.ends, middle - 90, 110, "succeeded");
    box("cancelled", COL.ends, middle - 30, 110, "cancelled");
    box("dead", COL.ends, middle + 30, 110, "dead");
    box("purged", COL.ends, middle + 90, 110, "purged");
    for (const [edge, x, dy] of EDGE_LABELS) {
      const t = svg("text", { x, y: middle + Number(dy), class: "taskq-edge", "data-edge": String(edge),
        "text-anchor": "middle" }, "");
      statics.appendChild(t);
      edgeText.set(String(edge), t);
    }
    laidOut = slots.length;
    if (shown) showCounts(shown); // a new worker slot redraws the diagram: keep the counts on it
  }
  let laidOut = -1;

  /** @type {Item[]} */
  let buffer = [];
  let skipped = 0;
  let played = 0;
  let frames = 0;
  let paused = false;
  let rate = 1;
  let anchorEvent = 0; // event time (ms) played at anchorWall
  let anchorWall = 0;
  /** @type {Token[]} */
  let tokens = [];
  /** @type {Batch | null} */
  let shown = null;

  /** @param {Batch} b */
  function showCounts(b) {
    shown = b;
    for (const [node, text] of counts) {
      if (node.includes("#")) text.textContent = "";
      else text.textContent = String(b.occupancy[node] ?? 0);
    }
    for (const [edge, text] of edgeText) {
      const n = b.edges[edge] ?? 0;
      text.textContent = n ? edge.replace(">", "\u2192") + " " + n : "";
    }
  }

  function onBatch() {
    const b = model.get("batch");
    if (!b || !b.seq) return;
    if ((model.get("slots") || []).length !== laidOut) layout();
    const wasEmpty = buffer.length === 0;
    if (!b.moves.length) buffer.push({ batch: b, move: null });
    for (const m of b.moves) buffer.push({ batch: b, move: m });
    if (buffer.length > MAX_BUFFER) {
      const drop = buffer.length - MAX_BUFFER;
      skipped += drop;
      buffer = buffer.slice(drop);
    }
    if (wasEmpty) restart();
  }

  function restart() {
    anchorWall = performance.now();
    const first = buffer.find((item) => item.move !== null);
    anchorEvent = first && first.move ? first.move[0] : 0;
  }

  /** @param {Item} item @param {number} now */
  function play(item, now) {
    const m = item.move;
    const last = buffer.length === 0 || buffer[0].batch !== item.batch;
    if (last) showCounts(item.batch);
    if (!m) return;
    played += 1;
    const from = where.get(m[3]) || where.get(m[3].includes("#") ? "running" : "new") || [COL.src, middle];
    const to = where.get(m[4]) || [COL.ends, middle];
    if (tokens.length >= MAX_TOKENS) return; // the counts still move; this token is not drawn
    const dot = svg("circle", { r: 5, cx: from[0], cy: from[1], class: "taskq-token", fill: colour(m[5]),
      "data-task": m[1] });
    dot.appendChild(svg("title", {}, `${m[1]} (${m[8]}) P${m[5] ?? "?"} attempt ${m[6] ?? "-"}: ${m[2]}` +
      (m[7] ? ` on ${m[7]}` : "")));
    tokenLayer.appendChild(dot);
    tokens.push({ move: m, el: dot, t0: now, from, to });
  }

  /** @param {number} now */
  function frame(now) {
    frames += 1;
    if (!paused) {
      const horizon = anchorEvent + (now - anchorWall) * rate;
      while (buffer.length && (buffer[0].move === null || buffer[0].move[0] <= horizon)) {
        const item = /** @type {Item} */ (buffer.shift());
        play(item, now);
      }
      if (!buffer.length) restart();
    }
    const glide = GLIDE_MS / Math.max(rate, 0.25);
    tokens = tokens.filter((t) => {
      const k = Math.min(1, (now - t.t0) / glide);
      const e = k < 0.5 ? 2 * k * k : 1 - (2 - 2 * k) ** 2 / 2;
      t.el.setAttribute("cx", (t.from[0] + (t.to[0] - t.from[0]) * e).toFixed(1));
      t.el.setAttribute("cy", (t.from[1] + (t.to[1] - t.from[1]) * e).toFixed(1));
      if (k >= 1 && !paused) {
        t.el.remove();
        return false;
      }
      return true;
    });
    if (frames % 10 === 0) {
      const b = shown;
      status.replaceChildren();
      const field = (/** @type {string} */ name, /** @type {string} */ text) => {
        const s = document.createElement("span");
        s.setAttribute("data-field", name);
        s.textContent = text;
        status.appendChild(s);
      };
      field("rate", b ? `${b.rate.toFixed(0)} moves/s` : "");
      field("sampling", b && b.sampling ? "sampling tokens (all moves counted on the edges)" : "every move shown");
      field("buffered", `${buffer.length} buffered` + (skipped ? `, ${skipped} skipped` : ""));
      root.dataset.played = String(played);
      root.dataset.frames = String(frames);
      root.dataset.buffered = String(buffer.length);
    }
    handle = requestAnimationFrame(frame);
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "play" : "pause";
    step.disabled = !paused;
    if (!paused) restart();
  });
  step.addEventListener("click", () => {
    const item = buffer.shift();
    if (item) play(item, performance.now());
  });
  speed.addEventListener("change", () => {
    rate = Number(speed.value);
    restart();
  });
  const onError = () => {
    error.textContent = model.get("error") || "";
  };
  layout();
  onBatch();
  onError();
  model.on("change:batch", onBatch);
  model.on("change:error", onError);
  let handle = requestAnimationFrame(frame);
  return () => {
    cancelAnimationFrame(handle);
    model.off("change:batch", onBatch);
    model.off("change:error", onError);
  };
}

export default { render };
