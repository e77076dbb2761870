// REST calls to /api/v1 with the bearer token, and the TanStack Query hooks the pages use.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { getToken, requestToken } from "./auth";
import type { DeadSummary, ListState, QueueSnap, RegisteredTask, Task, TaskEvent, TaskPage, WorkerSnap } from "./types";

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** One line from an error body: FastAPI's 422 detail list or taskq's Problem. */
export function errorMessage(status: number, body: unknown): string {
  if (body && typeof body === "object") {
    const b = body as { detail?: unknown; error?: unknown };
    if (Array.isArray(b.detail)) {
      return b.detail
        .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).filter((x) => x !== "body").join(".")}: ${d.msg ?? ""}`)
        .join("; ");
    }
    if (typeof b.detail === "string") return b.detail;
    if (typeof b.error === "string") return b.error;
  }
  return `HTTP ${status}`;
}

/** Set from GET /auth: when the server needs a token for changes, ask for it before sending one. */
let tokenRequired = false;

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const token = getToken();
  if (tokenRequired && !token && (init.method ?? "GET") !== "GET") {
    requestToken();
    throw new ApiError(401, "this server needs its API token: sign in, then try again");
  }
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (init.body !== undefined) headers.set("Content-Type", "application/json");
  const response = await fetch(`${API}${path}`, { ...init, headers });
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!response.ok) {
    if (response.status === 401 || response.status === 403) requestToken();
    throw new ApiError(response.status, errorMessage(response.status, body));
  }
  return body as T;
}

const post = <T>(path: string, body: unknown) => api<T>(path, { method: "POST", body: JSON.stringify(body) });
const q = encodeURIComponent;

export interface AuthInfo {
  token_required: boolean;
  reads_need_token: boolean;
}

export const useAuthInfo = () =>
  useQuery({
    queryKey: ["auth"],
    queryFn: async () => {
      const info = await api<AuthInfo>("/auth");
      tokenRequired = info.token_required;
      return info;
    },
    staleTime: Infinity,
  });
export const useQueues = () => useQuery({ queryKey: ["queues"], queryFn: () => api<QueueSnap[]>("/queues") });
export const useWorkers = (live: boolean) =>
  useQuery({ queryKey: ["workers"], queryFn: () => api<WorkerSnap[]>("/workers"), refetchInterval: live ? false : 2000 });
export const useRegistered = () =>
  useQuery({ queryKey: ["registered"], queryFn: () => api<RegisteredTask[]>("/registered-tasks"), staleTime: 60_000 });

export const useTask = (id: string, refetch: boolean) =>
  useQuery({
    queryKey: ["task", id],
    queryFn: () => api<Task>(`/tasks/${q(id)}`),
    staleTime: 0, // events for it may have passed while another page was shown
    refetchInterval: (query) => (refetch && ["queued", "running", "scheduled"].includes(query.state.data?.status ?? "") ? 1000 : false),
    retry: (n, e) => !(e instanceof ApiError && e.status === 404) && n < 2,
  });

export const useTaskEvents = (id: string) =>
  useQuery({ queryKey: ["task-events", id], queryFn: () => api<TaskEvent[]>(`/tasks/${q(id)}/events`), staleTime: 0 });

export const useTaskPage = (queue: string, state: ListState, cursor: string | null) =>
  useQuery({
    queryKey: ["tasks", queue, state, cursor],
    queryFn: () => api<TaskPage>(`/queues/${q(queue)}/tasks?state=${state}&limit=50${cursor ? `&cursor=${q(cursor)}` : ""}`),
    refetchInterval: 2000,
    placeholderData: (prev) => prev,
  });

export const useDead = (queue: string) =>
  useQuery({ queryKey: ["dead", queue], queryFn: () => api<DeadSummary[]>(`/queues/${q(queue)}/dead?limit=1000`), refetchInterval: 3000 });

export type DeadSelector = { ids: string[] } | { error_type: string } | { all: true };

export function useDeadAction(queue: string, action: "redrive" | "purge") {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (sel: DeadSelector) => post<{ count: number }>(`/queues/${q(queue)}/dead/${action}`, sel),
    onSettled: () => client.invalidateQueries({ queryKey: ["dead", queue] }),
  });
}

export interface SubmitBody {
  name: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  priority: number;
  delay_s: number;
  queue?: string;
}

export const useSubmit = () => useMutation({ mutationFn: (body: SubmitBody) => post<{ id: string }>("/tasks", body) });

export const redriveTask = (queue: string, id: string) => post<{ count: number }>(`/queues/${q(queue)}/dead/redrive`, { ids: [id] });

export const cancelTask = (id: string) => post<{ outcome: string }>(`/tasks/${q(id)}/cancel`, {});
