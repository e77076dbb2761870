// The browser side of taskq_widgets.KeyInspector: an anywidget ES module. Plain JavaScript with
// JSDoc types, checked by `npm run lint` and `npm run typecheck` in widgets/; no build step.
//
// The DOM it draws, for tests and styling: a root div.taskq-keyinspector; one
// section.taskq-ki-place[data-place=queued|running|scheduled|dead] per sorted set, its size in
// [data-field=total], its members as table rows tr[data-id=<task id>] (class taskq-changed when
// the member arrived or its score moved since the previous reading); errors in .taskq-error.

/**
 * @typedef {{id: string, position: number, score: number, name: string | null,
 *   priority: number | null, ready_us: number | null, effective_priority: number | null,
 *   attempts: number}} QueuedRow
 * @typedef {{id: string, deadline_ms: number, lease_left_ms: number, name: string | null,
 *   worker: string | null, attempt: number, token: string | null}} RunningRow
 * @typedef {{id: string, due_ms: number, due_in_ms: number, name: string | null,
 *   priority: number | null, attempts: number}} ScheduledRow
 * @typedef {{id: string, died_ms: number, name: string | null, attempts: number,
 *   error_type: string | null}} DeadRow
 * @typedef {"queued" | "running" | "scheduled" | "dead"} Place
 * @typedef {{
 *   queue: string, queued: QueuedRow[], running: RunningRow[], scheduled: ScheduledRow[],
 *   dead: DeadRow[], totals: Record<string, number>, aging_s: number | null,
 *   changed: Record<string, string[]>, taken_ms: number, updates: number, error: string,
 *   polling: boolean,
 * }} Model
 * @typedef {{id: string, cells: string[]}} Row
 */

/** @type {(keyof Model)[]} */
const WATCHED = ["queued", "running", "scheduled", "dead", "totals", "aging_s", "changed", "taken_ms",
  "updates", "error", "polling"];
const DASH = "\u2013";

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
 * @param {unknown} v
 * @returns {string}
 */
function show(v) {
  return v === null || v === undefined ? DASH : String(v);
}

/**
 * A signed duration in ms, as seconds from one second up.
 * @param {number} v
 * @returns {string}
 */
function ms(v) {
  const a = Math.abs(v);
  const sign = v < 0 ? "-" : "";
  return a >= 1000 ? `${sign}${(a / 1000).toFixed(1)} s` : `${sign}${a} ms`;
}

/**
 * The rows of one place, as cells.
 * @param {Model} m
 * @param {Place} place
 * @returns {{columns: string[], rows: Row[], hint: string}}
 */
function rowsOf(m, place) {
  if (place === "queued") {
    const aging = m.aging_s !== null;
    const columns = ["#", "member (task id)", "name", "priority", "score", "ready \u00b5s (FIFO)"];
    if (aging) columns.push("effective priority");
    const rows = m.queued.map((r) => {
      const cells = [String(r.position), r.id, show(r.name), show(r.priority), String(r.score), show(r.ready_us)];
      if (aging) cells.push(show(r.effective_priority));
      return { id: r.id, cells };
    });
    const hint = aging
      ? `score = ready + (10 \u2212 priority) \u00d7 ${m.aging_s} s aging window: lowest is claimed first`
      : "score = ready + (10 \u2212 priority) \u00d7 2\u2074\u2078 \u00b5s (strict priority): lowest is claimed first";
    return { columns, rows, hint };
  }
  if (place === "running") {
    return {
      columns: ["member (task id)", "name", "worker", "attempt", "token", "deadline ms (score)", "lease left"],
      rows: m.running.map((r) => ({ id: r.id, cells: [r.id, show(r.name), show(r.worker), String(r.attempt),
        show(r.token), String(r.deadline_ms), ms(r.lease_left_ms)] })),
      hint: "score = lease deadline (server ms); a heartbeat pushes it on, the reaper takes back what passed",
    };
  }
  if (place === "scheduled") {
    return {
      columns: ["member (task id)", "name", "priority", "attempts", "due ms (score)", "due in"],
      rows: m.scheduled.map((r) => ({ id: r.id, cells: [r.id, show(r.name), show(r.priority), String(r.attempts),
        String(r.due_ms), ms(r.due_in_ms)] })),
      hint: "score = due time (server ms): delayed tasks and retries backing off",
    };
  }
  return {
    columns: ["member (task id)", "name", "attempts", "error", "died ms (score)"],
    rows: m.dead.map((r) => ({ id: r.id, cells: [r.id, show(r.name), String(r.attempts), show(r.error_type),
      String(r.died_ms)] })),
    hint: "the dead-letter queue: score = time of death (server ms)",
  };
}

/** @type {Place[]} */
const PLACES = ["queued", "running", "scheduled", "dead"];

/** @type {import("@anywidget/types").Render<Model>} */
function render({ model, el: host }) {
  const root = el("div", "taskq-keyinspector taskq-inspect");
  const title = el("div", "taskq-title");
  const error = el("div", "taskq-error");
  const grid = el("div", "taskq-ki-grid");
  root.appendChild(title);
  root.appendChild(error);
  root.appendChild(grid);
  host.appendChild(root);

  function update() {
    /** @type {Model} */
    const m = {
      queue: model.get("queue"), queued: model.get("queued") || [], running: model.get("running") || [],
      scheduled: model.get("scheduled") || [], dead: model.get("dead") || [], totals: model.get("totals") || {},
      aging_s: model.get("aging_s"), changed: model.get("changed") || {}, taken_ms: model.get("taken_ms"),
      updates: model.get("updates"), error: model.get("error"), polling: model.get("polling"),
    };
    title.textContent = `taskq \u00b7 ${m.queue} \u00b7 the queue's sorted sets \u00b7 ` +
      `${m.polling ? "live" : "paused"} \u00b7 update ${m.updates}`;
    error.textContent = m.error || "";
    error.style.display = m.error ? "block" : "none";
    grid.replaceChildren();
    for (const place of PLACES) {
      const section = el("section", "taskq-ki-place");
      section.setAttribute("data-place", place);
      const total = m.totals[place] || 0;
      const head = el("div", "taskq-caption");
      head.appendChild(el("b", "", place));
      head.appendChild(document.createTextNode(" \u00b7 ZCARD "));
      const count = el("span", "taskq-ki-total", String(total));
      count.setAttribute("data-field", "total");
      head.appendChild(count);
      const { columns, rows, hint } = rowsOf(m, place);
      if (rows.length < total) head.appendChild(document.createTextNode(` (first ${rows.length})`));
      section.appendChild(head);
      section.appendChild(el("div", "taskq-hint", hint));
      if (rows.length) {
        const changed = new Set(m.changed[place] || []);
        const t = el("table", "taskq-ki-table");
        const tr = el("tr");
        columns.forEach((c) => tr.appendChild(el("th", "", c)));
        t.appendChild(tr);
        for (const row of rows) {
          const line = el("tr");
          line.setAttribute("data-id", row.id);
          if (changed.has(row.id)) line.classList.add("taskq-changed");
          row.cells.forEach((c) => line.appendChild(el("td", "", c)));
          t.appendChild(line);
        }
        section.appendChild(t);
      } else {
        section.appendChild(el("div", "taskq-empty", "(empty)"));
      }
      grid.appendChild(section);
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
