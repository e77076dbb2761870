// The browser side of taskq_widgets.Leases: an anywidget ES module. Plain JavaScript with JSDoc
// types, checked by `npm run lint` and `npm run typecheck` in widgets/; no build step.
//
// Deadlines are server times. Each reading carries the server time it was taken (taken_ms);
// the offset between it and this browser's clock at arrival lets the countdown run between
// readings on the server's clock, the one the reaper uses.
//
// The DOM it draws, for tests and styling: a root div.taskq-leases; one row per lease,
// tr[data-id=<task id>] (class taskq-expired once its deadline passed, taskq-extended for a moment
// after a heartbeat pushed it on), whose td.taskq-lease-left has the milliseconds left in
// [data-left-ms] (negative once expired) and a bar span.taskq-lease-bar; the lease events in
// ol.taskq-lease-events, one li[data-type=<event type>] each; errors in .taskq-error.

/**
 * @typedef {{id: string, name: string | null, worker: string | null, attempt: number,
 *   token: string | null, deadline_ms: number, lease_left_ms: number, lease_ms: number | null,
 *   started_ms: number | null, extensions: number, extended_ms: number | null}} Lease
 * @typedef {{type: string, id: string, worker: string | null, attempt: number | null,
 *   t_ms: number}} LeaseEvent
 * @typedef {{
 *   queue: string, leases: Lease[], events: LeaseEvent[], requeued: number, extensions: number,
 *   running_total: number, taken_ms: number, updates: number, error: string, polling: boolean,
 * }} Model
 */

/** @type {(keyof Model)[]} */
const WATCHED = ["leases", "events", "requeued", "extensions", "running_total", "updates", "error", "polling"];
const DASH = "\u2013";
/** Countdown redraws per second between readings. */
const TICKS_PER_S = 10;
/** How long a heartbeat's extension stays highlighted, ms. */
const FLASH_MS = 600;

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
 * @param {number} v
 * @returns {string}
 */
function seconds(v) {
  return `${(v / 1000).toFixed(1)} s`;
}

/** @type {import("@anywidget/types").Render<Model>} */
function render({ model, el: host }) {
  const root = el("div", "taskq-leases taskq-inspect");
  const title = el("div", "taskq-title");
  const error = el("div", "taskq-error");
  const body = el("div", "taskq-leases-body");
  const log = el("ol", "taskq-lease-events");
  [title, error, body, el("div", "taskq-caption", "lease events (newest last)"), log].forEach((n) =>
    root.appendChild(n));
  host.appendChild(root);

  // server time = Date.now() + offset, from the last reading
  let offset = 0;
  /** @type {{cell: HTMLTableCellElement, bar: HTMLSpanElement, text: HTMLSpanElement, row: HTMLTableRowElement,
   *   lease: Lease}[]} */
  let ticking = [];
  /** @type {Map<string, number>} heartbeats seen per attempt (id/token), to flash new ones */
  const extensions = new Map();

  function tick() {
    const now = Date.now() + offset;
    for (const { cell, bar, text, row, lease } of ticking) {
      const left = Math.round(lease.deadline_ms - now);
      cell.setAttribute("data-left-ms", String(left));
      text.textContent = left >= 0 ? seconds(left) : `expired ${seconds(-left)} ago`;
      const full = lease.lease_ms || Math.max(left, 1);
      bar.style.width = `${Math.max(0, Math.min(100, (100 * left) / full))}%`;
      row.classList.toggle("taskq-expired", left < 0);
    }
  }

  function update() {
    offset = model.get("taken_ms") - Date.now();
    const leases = model.get("leases") || [];
    const state = model.get("polling") ? "live" : "paused";
    title.textContent = `taskq \u00b7 ${model.get("queue")} \u00b7 leases \u00b7 running ${model.get("running_total")}` +
      ` \u00b7 heartbeats seen ${model.get("extensions")} \u00b7 requeued by the reaper ${model.get("requeued")}` +
      ` \u00b7 ${state}`;
    const err = model.get("error");
    error.textContent = err || "";
    error.style.display = err ? "block" : "none";
    body.replaceChildren();
    ticking = [];
    if (!leases.length) {
      body.appendChild(el("div", "taskq-empty", "no task is running"));
    } else {
      const t = el("table", "taskq-lease-table");
      const head = el("tr");
      ["task", "name", "worker", "attempt", "token", "heartbeats", "lease left"].forEach((c) =>
        head.appendChild(el("th", "", c)));
      t.appendChild(head);
      for (const lease of leases) {
        const row = el("tr");
        row.setAttribute("data-id", lease.id);
        [lease.id, lease.name || DASH, lease.worker || DASH, String(lease.attempt), lease.token || DASH,
          String(lease.extensions)].forEach((c) => row.appendChild(el("td", "", c)));
        const cell = el("td", "taskq-lease-left");
        const track = el("span", "taskq-lease-track");
        const bar = el("span", "taskq-lease-bar");
        track.appendChild(bar);
        const text = el("span", "taskq-lease-text");
        cell.appendChild(track);
        cell.appendChild(text);
        row.appendChild(cell);
        const key = `${lease.id}/${lease.token}`;
        const before = extensions.get(key);
        if (before !== undefined && lease.extensions > before) {
          row.classList.add("taskq-extended");
          setTimeout(() => row.classList.remove("taskq-extended"), FLASH_MS);
        }
        extensions.set(key, lease.extensions);
        t.appendChild(row);
        ticking.push({ cell, bar, text, row, lease });
      }
      body.appendChild(t);
    }
    const events = model.get("events") || [];
    log.replaceChildren();
    for (const e of events.slice(-15)) {
      const item = el("li", `taskq-event-${e.type}`);
      item.setAttribute("data-type", e.type);
      const when = new Date(e.t_ms).toLocaleTimeString();
      const who = e.worker ? ` by ${e.worker}` : "";
      const attempt = e.attempt !== null ? ` (attempt ${e.attempt})` : "";
      const meaning = e.type === "requeued" ? " \u2014 the lease ran out; the reaper put it back" : "";
      item.textContent = `${when} ${e.type} ${e.id}${who}${attempt}${meaning}`;
      log.appendChild(item);
    }
    tick();
  }

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
  const timer = setInterval(tick, 1000 / TICKS_PER_S);
  update();
  return () => {
    clearInterval(timer);
    for (const name of WATCHED) model.off(`change:${name}`, schedule);
  };
}

export default { render };
