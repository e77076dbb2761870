// Live data: the API's WebSocket (snapshots at 4 Hz and every task event), reconnecting with
// backoff and resuming from the last event cursor; while it is down, REST polling stands in.
import { useSyncExternalStore } from "react";
import { api, ApiError } from "./api";
import { getToken } from "./auth";
import { backoffMs, pushHistory, wsUrl, type Point } from "./format";
import type { QueueSnap, ServerMessage, Snapshot, TaskEvent, WorkerSnap } from "./types";

export type Connection = "connecting" | "live" | "reconnecting" | "polling";

export interface LiveState {
  connection: Connection;
  snapshot: Snapshot | null;
  history: Map<string, Point[]>;
  events: TaskEvent[];
  /** "redis": the server says Redis is down; "server": the server does not answer. */
  outage: "" | "redis" | "server";
  /** The one line that said so, for the badge's tooltip. */
  downDetail: string;
  version: number;
}

const MAX_EVENTS = 200;
const POLL_AFTER_FAILURES = 2;
const POLL_MS = 2000;
const HZ = 4;

type EventListener = (e: TaskEvent) => void;

export class LiveClient {
  state: LiveState = { connection: "connecting", snapshot: null, history: new Map(), events: [], outage: "", downDetail: "", version: 0 };
  private ws: WebSocket | null = null;
  private failures = 0;
  private since: Record<string, string> = {};
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private listeners = new Set<() => void>();
  private eventListeners = new Set<EventListener>();
  private stopped = false;

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopPolling();
    this.ws?.close();
    this.ws = null;
  }

  /** Reconnect at once (a new token). */
  restart(): void {
    this.ws?.close();
    this.failures = 0;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.connect();
  }

  subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  onEvent(l: EventListener): () => void {
    this.eventListeners.add(l);
    return () => this.eventListeners.delete(l);
  }

  getState = (): LiveState => this.state;

  private set(patch: Partial<LiveState>): void {
    this.state = { ...this.state, ...patch, version: this.state.version + 1 };
    for (const l of this.listeners) l();
  }

  private connect(): void {
    if (this.stopped) return;
    const ws = new WebSocket(wsUrl(window.location, getToken()));
    this.ws = ws;
    ws.onopen = () => {
      const since = Object.keys(this.since).length ? this.since : undefined;
      ws.send(JSON.stringify({ queues: null, hz: HZ, since }));
    };
    ws.onmessage = (m: MessageEvent<string>) => this.handle(JSON.parse(m.data) as ServerMessage);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failures += 1;
      if (this.stopped) return;
      if (this.failures >= POLL_AFTER_FAILURES) this.startPolling();
      else this.set({ connection: "reconnecting" });
      this.retryTimer = setTimeout(() => this.connect(), backoffMs(this.failures - 1));
    };
  }

  private handle(msg: ServerMessage): void {
    switch (msg.type) {
      case "subscribed":
        this.failures = 0;
        this.stopPolling();
        this.set({ connection: "live" });
        break;
      case "snapshot":
        this.applySnapshot(msg.snapshot);
        break;
      case "unavailable":
        this.set({ outage: "redis", downDetail: msg.detail });
        break;
      case "event": {
        const e = msg.event;
        this.since[e.queue] = e.cursor;
        const events = [e, ...this.state.events].slice(0, MAX_EVENTS);
        this.set({ events });
        for (const l of this.eventListeners) l(e);
        break;
      }
      default:
        break;
    }
  }

  applySnapshot(snapshot: Snapshot): void {
    pushHistory(this.state.history, snapshot);
    this.set({ snapshot, outage: "", history: this.state.history });
  }

  private startPolling(): void {
    if (this.state.connection !== "polling") this.set({ connection: "polling" });
    if (this.pollTimer) return;
    const poll = async () => {
      try {
        const [queues, workers] = await Promise.all([api<QueueSnap[]>("/queues"), api<WorkerSnap[]>("/workers")]);
        const taken = Math.max(Date.now(), ...queues.map((q) => q.taken_ms));
        if (this.state.connection === "polling") this.applySnapshot({ taken_ms: taken, queues, workers });
      } catch (e) {
        if (e instanceof ApiError && e.status < 500) return; // a token problem: the prompt handles it
        const outage = e instanceof ApiError && e.status === 503 ? "redis" : "server";
        this.set({ outage, downDetail: e instanceof Error ? e.message : String(e) });
      }
    };
    void poll();
    this.pollTimer = setInterval(() => void poll(), POLL_MS);
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}

export const live = new LiveClient();

export function useLive(): LiveState {
  return useSyncExternalStore(live.subscribe, live.getState);
}
