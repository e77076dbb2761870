import { describe, expect, it } from "vitest";
import { argsText, backoffMs, defaultsOf, depthSegments, fmtMs, groupByError, parseField, pushHistory, rate, show, wsUrl, type Point } from "./format";
import type { QueueSnap, Snapshot } from "./types";

const queue = (name: string, succeeded: number, queued = 0): QueueSnap => ({
  queue: name,
  taken_ms: 0,
  queued,
  by_priority: {},
  scheduled: 0,
  next_due_ms: null,
  running: 0,
  overdue: 0,
  dead: 0,
  counters: {},
  latency: {},
  windows: [{ length_s: 10, start_ms: 0, end_ms: 10_000, span_s: 10, counts: { succeeded }, latency: { wait: { samples: 1, p50_ms: 3, p90_ms: 4, p99_ms: 5, p999_ms: 5 } } }],
  running_tasks: [],
});

describe("format", () => {
  it("formats durations by size", () => {
    expect(fmtMs(null)).toBe("–");
    expect(fmtMs(5.25)).toBe("5.3 ms");
    expect(fmtMs(250)).toBe("250 ms");
    expect(fmtMs(2500)).toBe("2.50 s");
    expect(fmtMs(90_000)).toBe("1.5 min");
  });

  it("shows strings as themselves and other values as JSON text", () => {
    expect(show("<script>alert(1)</script>")).toBe("<script>alert(1)</script>");
    expect(show([1, "a"])).toBe('[\n  1,\n  "a"\n]');
  });

  it("writes arguments on one line as a call would", () => {
    expect(argsText([1, "a"], { k: [2], s: "<b>" })).toBe('1, "a", k=[2], s="<b>"');
    expect(argsText([], {})).toBe("");
  });

  it("computes a window's rate over its span", () => {
    expect(rate(queue("q", 25).windows[0], "succeeded")).toBe(2.5);
    expect(rate(undefined, "succeeded")).toBe(0);
  });

  it("orders depth segments most urgent first and drops empty ones", () => {
    expect(depthSegments({ "1": 3, "10": 1, "5": 0 })).toEqual([
      [10, 1],
      [1, 3],
    ]);
  });

  it("keeps a bounded history per queue and ignores a repeated snapshot", () => {
    const history = new Map<string, Point[]>();
    for (let i = 1; i <= 5; i++) {
      const snap: Snapshot = { taken_ms: i * 1000, queues: [queue("a", i * 10, i)], workers: [] };
      pushHistory(history, snap, 3);
      pushHistory(history, snap, 3);
    }
    const points = history.get("a") ?? [];
    expect(points.map((p) => p.t)).toEqual([3, 4, 5]);
    expect(points[2]).toMatchObject({ throughput: 5, waitP50: 3, waitP99: 5, queued: 5 });
  });

  it("groups dead tasks by error type, largest first", () => {
    const d = (id: string, error_type: string | null) => ({ id, name: "n", attempts: 1, error_type, error: "e", finished_ms: 1 });
    const groups = groupByError([d("1", "KeyError"), d("2", "ValueError"), d("3", "ValueError"), d("4", null)]);
    expect(groups.map((g) => [g.errorType, g.count])).toEqual([
      ["ValueError", 2],
      ["(no error type)", 1],
      ["KeyError", 1],
    ]);
    expect(groups[0]?.ids).toEqual(["2", "3"]);
  });

  it("backs off to at most 5 s", () => {
    expect([0, 1, 2, 10].map(backoffMs)).toEqual([250, 500, 1000, 5000]);
  });

  it("builds the WebSocket URL with the token escaped", () => {
    expect(wsUrl({ protocol: "https:", host: "h:1" }, "a b")).toBe("wss://h:1/api/v1/ws?token=a%20b");
    expect(wsUrl({ protocol: "http:", host: "h" }, null)).toBe("ws://h/api/v1/ws");
  });

  it("fills form defaults and parses fields as JSON where they are", () => {
    expect(defaultsOf({ properties: { a: {}, b: { default: 2 } } })).toEqual({ a: "", b: "2" });
    expect(parseField("3", "integer")).toBe(3);
    expect(parseField("[1, 2]", "array")).toEqual([1, 2]);
    expect(parseField("12", "string")).toBe("12");
    expect(parseField("hello", undefined)).toBe("hello");
  });
});
