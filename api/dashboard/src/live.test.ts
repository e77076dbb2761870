// The live connection: subscribe, resume from the last cursor after a drop, fall back to REST
// polling while the WebSocket stays down, and go back to live when it returns.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Snapshot } from "./types";

class FakeSocket {
  static all: FakeSocket[] = [];
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(text: string) {
    this.sent.push(text);
  }
  close() {
    this.onclose?.();
  }
  receive(msg: object) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

const snapshot = (taken_ms: number, queued: number): Snapshot => ({
  taken_ms,
  workers: [],
  queues: [
    {
      queue: "q",
      taken_ms,
      queued,
      by_priority: { "5": queued },
      scheduled: 0,
      next_due_ms: null,
      running: 0,
      overdue: 0,
      dead: 0,
      counters: {},
      latency: {},
      windows: [],
      running_tasks: [],
    },
  ],
});

const last = () => FakeSocket.all[FakeSocket.all.length - 1] as FakeSocket;

describe("LiveClient", () => {
  let fetched: string[];

  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.all = [];
    fetched = [];
    vi.stubGlobal("window", { location: { protocol: "http:", host: "h:1" } });
    vi.stubGlobal("WebSocket", FakeSocket);
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        fetched.push(url);
        const body = url.endsWith("/queues") ? snapshot(5000, 7).queues : [];
        return new Response(JSON.stringify(body), { status: 200 });
      }),
    );
  });

  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("subscribes, goes live and keeps snapshots and events", async () => {
    const { LiveClient } = await import("./live");
    const live = new LiveClient();
    live.start();
    const ws = last();
    expect(ws.url).toBe("ws://h:1/api/v1/ws");
    ws.onopen?.();
    expect(JSON.parse(ws.sent[0] ?? "")).toEqual({ queues: null, hz: 4 });
    expect(live.state.connection).toBe("connecting");
    ws.receive({ type: "subscribed", queues: null, hz: 4 });
    expect(live.state.connection).toBe("live");
    ws.receive({ type: "snapshot", snapshot: snapshot(1000, 3) });
    expect(live.state.snapshot?.queues[0]?.queued).toBe(3);
    expect(live.state.history.get("q")?.length).toBe(1);
    const seen: string[] = [];
    live.onEvent((e) => seen.push(e.task_id));
    ws.receive({ type: "event", event: { type: "started", task_id: "q:1", queue: "q", cursor: "9-0#0" } });
    expect(seen).toEqual(["q:1"]);
    expect(live.state.events[0]?.task_id).toBe("q:1");
    ws.receive({ type: "unavailable", detail: "down" });
    expect(live.state.outage).toBe("redis");
    expect(live.state.downDetail).toBe("down");
    ws.receive({ type: "snapshot", snapshot: snapshot(2000, 4) });
    expect(live.state.outage).toBe("");
    live.stop();
  });

  it("reconnects with the last cursor, polls while down, and returns to live", async () => {
    const { LiveClient } = await import("./live");
    const live = new LiveClient();
    live.start();
    let ws = last();
    ws.onopen?.();
    ws.receive({ type: "subscribed" });
    ws.receive({ type: "event", event: { type: "enqueued", task_id: "q:2", queue: "q", cursor: "12-0#0" } });

    ws.close(); // dropped: one quick retry first
    expect(live.state.connection).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(250);
    ws = last();
    expect(FakeSocket.all).toHaveLength(2);
    ws.onopen?.();
    expect(JSON.parse(ws.sent[0] ?? "").since).toEqual({ q: "12-0#0" });

    ws.close(); // down again: REST polling stands in
    expect(live.state.connection).toBe("polling");
    await vi.advanceTimersByTimeAsync(10);
    expect(fetched).toEqual(expect.arrayContaining(["/api/v1/queues", "/api/v1/workers"]));
    expect(live.state.snapshot?.queues[0]?.queued).toBe(7);

    await vi.advanceTimersByTimeAsync(500);
    ws = last();
    expect(FakeSocket.all).toHaveLength(3);
    ws.onopen?.();
    ws.receive({ type: "subscribed" });
    expect(live.state.connection).toBe("live");
    const polls = fetched.length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(fetched.length).toBe(polls); // polling stopped
    live.stop();
  });
});
