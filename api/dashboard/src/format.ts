// Pure helpers (unit-tested in format.test.ts): formatting, history, grouping.
import type { DeadSummary, QueueSnap, Snapshot, Window } from "./types";

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms === 0) return "0 ms";
  if (Math.abs(ms) < 1) return `${ms.toFixed(2)} ms`;
  if (Math.abs(ms) < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  const s = ms / 1000;
  if (Math.abs(s) < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = s / 60;
  if (Math.abs(m) < 60) return `${m.toFixed(1)} min`;
  return `${(m / 60).toFixed(1)} h`;
}

export function fmtTime(ms: number | null | undefined): string {
  if (!ms) return "–";
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

export function fmtRate(perS: number): string {
  if (perS >= 100) return perS.toFixed(0);
  if (perS >= 10) return perS.toFixed(1);
  return perS.toFixed(2);
}

/** Shown as text, never as HTML: JSON for values, the string itself for strings. */
export function show(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2) ?? String(value);
}

/** A task's arguments on one line, as a call would read: `1, "a", key=2`. */
export function argsText(args: unknown[], kwargs: Record<string, unknown>): string {
  const one = (v: unknown) => JSON.stringify(v) ?? String(v);
  return [...args.map(one), ...Object.entries(kwargs).map(([k, v]) => `${k}=${one(v)}`)].join(", ");
}

export function windowOf(q: QueueSnap, length_s: number): Window | undefined {
  return q.windows.find((w) => w.length_s === length_s);
}

/** Tasks per second of one outcome over a window's whole seconds. */
export function rate(w: Window | undefined, outcome: string): number {
  if (!w || w.span_s <= 0) return 0;
  return (w.counts[outcome] ?? 0) / w.span_s;
}

/** Priorities of a queue's depth, most urgent first, as [priority, count]. */
export function depthSegments(byPriority: Record<string, number>): [number, number][] {
  return Object.entries(byPriority)
    .map(([p, n]): [number, number] => [Number(p), n])
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[0] - a[0]);
}

/** A colour per priority 1..10, from cool (1) to hot (10); the same in light and dark. */
export function priorityColor(p: number): string {
  const hue = 210 - ((Math.min(10, Math.max(1, p)) - 1) * 200) / 9;
  return `hsl(${hue.toFixed(0)} 75% 50%)`;
}

export interface Point {
  t: number; // seconds (uPlot's x)
  throughput: number;
  waitP50: number | null;
  waitP99: number | null;
  runP50: number | null;
  runP99: number | null;
  queued: number;
}

export const HISTORY_POINTS = 600;

/** Adds a snapshot's point to each queue's history (bounded), one point per window end. */
export function pushHistory(history: Map<string, Point[]>, snap: Snapshot, limit = HISTORY_POINTS): void {
  for (const q of snap.queues) {
    const w = windowOf(q, 10) ?? q.windows[0]; // REST polling has only the minute
    const point: Point = {
      t: snap.taken_ms / 1000,
      throughput: rate(w, "succeeded") + rate(w, "dead"),
      waitP50: w?.latency.wait?.p50_ms ?? null,
      waitP99: w?.latency.wait?.p99_ms ?? null,
      runP50: w?.latency.run?.p50_ms ?? null,
      runP99: w?.latency.run?.p99_ms ?? null,
      queued: q.queued,
    };
    const points = history.get(q.queue) ?? [];
    const last = points[points.length - 1];
    if (last && last.t >= point.t) continue; // the same snapshot twice
    points.push(point);
    if (points.length > limit) points.splice(0, points.length - limit);
    history.set(q.queue, points);
  }
}

export interface ErrorGroup {
  errorType: string;
  count: number;
  ids: string[];
  example: string;
}

/** Dead tasks grouped by error type, largest group first. */
export function groupByError(dead: DeadSummary[]): ErrorGroup[] {
  const groups = new Map<string, ErrorGroup>();
  for (const d of dead) {
    const key = d.error_type ?? "(no error type)";
    const g = groups.get(key) ?? { errorType: key, count: 0, ids: [], example: d.error ?? "" };
    g.count += 1;
    g.ids.push(d.id);
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.errorType.localeCompare(b.errorType));
}

/** Delay before reconnect attempt n (0-based): 0.25 s doubling to 5 s. */
export function backoffMs(attempt: number): number {
  return Math.min(5000, 250 * 2 ** attempt);
}

export function wsUrl(loc: { protocol: string; host: string }, token: string | null): string {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/api/v1/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`;
}

/** Initial values of a form from a task's JSON-schema parameters. */
export function defaultsOf(schema: { properties?: Record<string, { default?: unknown }> }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, p] of Object.entries(schema.properties ?? {})) {
    out[name] = p.default === undefined ? "" : JSON.stringify(p.default);
  }
  return out;
}

/** A form field's text as JSON (numbers, lists, objects), else the text as a string. */
export function parseField(text: string, type: string | string[] | undefined): unknown {
  const t = text.trim();
  if (type === "string") return text;
  try {
    return JSON.parse(t);
  } catch {
    return text;
  }
}
