// The shapes the taskq HTTP API and its WebSocket send (see api/taskq_api/models.py).

export type TaskStatus = "scheduled" | "queued" | "running" | "succeeded" | "dead" | "cancelled";
export type ListState = "queued" | "scheduled" | "running" | "dead";
export type Health = "alive" | "stale" | "gone";

export interface Percentiles {
  samples: number;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  p999_ms: number | null;
}

export interface Window {
  length_s: number;
  start_ms: number;
  end_ms: number;
  span_s: number;
  counts: Record<string, number>;
  latency: Record<string, Percentiles>;
}

export interface RunningTask {
  id: string;
  name: string;
  worker: string;
  attempt: number;
  priority: number | null;
  started_ms: number | null;
  deadline_ms: number;
  age_ms: number | null;
  lease_left_ms: number;
}

export interface QueueSnap {
  queue: string;
  taken_ms: number;
  queued: number;
  by_priority: Record<string, number>;
  scheduled: number;
  next_due_ms: number | null;
  running: number;
  overdue: number;
  dead: number;
  counters: Record<string, number>;
  latency: Record<string, Percentiles>;
  windows: Window[];
  running_tasks: RunningTask[];
}

export interface WorkerSnap {
  id: string;
  health: Health;
  heartbeat_ms: number;
  heartbeat_age_ms: number;
  host?: string | null;
  pid?: number | null;
  queues: string[];
  concurrency?: number | null;
  started_ms?: number | null;
  interval_ms?: number | null;
  processed?: number | null;
  failed?: number | null;
  current: string[];
}

export interface Snapshot {
  taken_ms: number;
  queues: QueueSnap[];
  workers: WorkerSnap[];
}

export interface TaskEvent {
  // enqueued, scheduled, queued, started, succeeded, cancelled, cancel_requested, retried, dead,
  // requeued, released, redriven, purged (deleted from the dead-letter queue), progress
  // (taskq.Event); kept a string: a type the page does not know shows as a plain badge.
  type: string;
  task_id: string;
  queue: string;
  priority: number | null;
  attempt: number;
  worker: string | null;
  timestamp_ms: number;
  cursor: string;
}

export interface Task {
  id: string;
  name: string;
  queue: string;
  status: TaskStatus;
  priority: number;
  args: unknown[];
  kwargs: Record<string, unknown>;
  attempts: number;
  max_retries: number;
  enqueued_ms: number;
  due_ms?: number | null;
  started_ms?: number | null;
  finished_ms?: number | null;
  timeout_s?: number | null;
  worker?: string | null;
  result?: unknown;
  error_type?: string | null;
  error?: string | null;
  traceback?: string | null;
  idempotency_key?: string | null;
  cancel_requested: boolean;
  meta: Record<string, string>;
}

export interface TaskPage {
  tasks: Task[];
  next_cursor: string | null;
}

export interface DeadSummary {
  id: string;
  name: string;
  attempts: number;
  error_type: string | null;
  error: string | null;
  finished_ms: number | null;
}

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  default?: unknown;
  title?: string;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

export interface RegisteredTask {
  name: string;
  queue: string;
  priority: number | null;
  max_retries: number;
  timeout_s: number | null;
  parameters: JsonSchema;
}

export type ServerMessage =
  | { type: "subscribed"; queues: string[] | null; hz: number }
  | { type: "snapshot"; snapshot: Snapshot }
  | { type: "event"; event: TaskEvent }
  | { type: "unavailable"; detail: string }
  | { type: "fell_behind"; queue: string }
  | { type: "caught_up" };
