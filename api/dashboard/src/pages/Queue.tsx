import { useState } from "react";
import { useLocation, useParams } from "wouter";
import { useTaskPage } from "../api";
import { argsText, fmtMs, fmtTime } from "../format";
import { useLive } from "../live";
import type { ListState, Task } from "../types";
import { Badge, Button, Card, ErrorLine, Stat, TaskLink, TD, TH } from "../ui";

const STATES: ListState[] = ["queued", "running", "scheduled", "dead"];

function extra(state: ListState, t: Task, now: number): string {
  if (state === "running") return t.started_ms && now ? `lease age ${fmtMs(now - t.started_ms)}` : "";
  if (state === "scheduled") return t.due_ms ? `due ${fmtTime(t.due_ms)}` : "";
  if (state === "dead") return `${t.error_type ?? ""}: ${t.error ?? ""}`;
  return `enqueued ${fmtTime(t.enqueued_ms)}`;
}

export function QueuePage() {
  const { queue = "" } = useParams<{ queue: string }>();
  const [state, setState] = useState<ListState>("queued");
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [search, setSearch] = useState("");
  const [, navigate] = useLocation();
  const { snapshot } = useLive();
  const page = useTaskPage(queue, state, cursors[cursors.length - 1] ?? null);
  const q = snapshot?.queues.find((x) => x.queue === queue);
  const now = snapshot?.taken_ms ?? 0;

  const pick = (s: ListState) => {
    setState(s);
    setCursors([null]);
  };

  return (
    <>
      <Card
        title={<span className="mono">{queue}</span>}
        actions={
          <form
            className="flex gap-2"
            onSubmit={(e) => {
              e.preventDefault();
              const id = search.trim();
              if (id) navigate(`/tasks/${encodeURIComponent(id.includes(":") ? id : `${queue}:${id}`)}`);
            }}
          >
            <input
              aria-label="Task id"
              placeholder="Find a task by id"
              value={search}
              onChange={(e) => setSearch(e.target.value)}
              className="w-56 rounded-md border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-800"
            />
            <Button type="submit">Find</Button>
          </form>
        }
      >
        {q && (
          <div className="grid grid-cols-2 gap-4 sm:grid-cols-4">
            <Stat label="Queued" value={q.queued} />
            <Stat label="Scheduled" value={q.scheduled} />
            <Stat label="Running" value={q.running} />
            <Stat label="Dead" value={q.dead} />
          </div>
        )}
      </Card>
      <Card>
        <div className="mb-3 flex flex-wrap gap-1" role="tablist">
          {STATES.map((s) => (
            <button
              key={s}
              role="tab"
              aria-selected={s === state}
              onClick={() => pick(s)}
              className={`rounded-md px-3 py-1 text-sm capitalize ${s === state ? "bg-indigo-600 text-white" : "bg-slate-100 dark:bg-slate-800"}`}
            >
              {s}
            </button>
          ))}
        </div>
        <ErrorLine error={page.error} />
        <div className="overflow-x-auto">
          <table className="w-full text-sm" data-testid="task-table">
            <thead>
              <tr>
                <th className={TH}>#</th>
                <th className={TH}>Task</th>
                <th className={TH}>Name</th>
                <th className={TH}>Priority</th>
                <th className={TH}>Args</th>
                <th className={TH}>Attempts</th>
                <th className={TH}></th>
              </tr>
            </thead>
            <tbody>
              {(page.data?.tasks ?? []).map((t, i) => (
                <tr key={t.id} className="border-t border-slate-100 dark:border-slate-800">
                  <td className={`${TD} tabular-nums text-slate-500`}>{(cursors.length - 1) * 50 + i + 1}</td>
                  <td className={TD}>
                    <TaskLink id={t.id} />
                  </td>
                  <td className={`${TD} mono`}>{t.name}</td>
                  <td className={TD}>
                    <Badge>{t.priority}</Badge>
                  </td>
                  <td className={`${TD} mono max-w-xs truncate`} title={argsText(t.args, t.kwargs)}>
                    {argsText(t.args, t.kwargs)}
                  </td>
                  <td className={`${TD} tabular-nums`}>{t.attempts}</td>
                  <td className={`${TD} text-slate-500`}>{extra(state, t, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {page.data && page.data.tasks.length === 0 && <p className="p-2 text-sm text-slate-500">No {state} tasks.</p>}
        </div>
        <div className="mt-3 flex gap-2">
          <Button disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>
            ← Previous
          </Button>
          <Button disabled={!page.data?.next_cursor} onClick={() => page.data?.next_cursor && setCursors([...cursors, page.data.next_cursor])}>
            Next →
          </Button>
        </div>
      </Card>
    </>
  );
}
