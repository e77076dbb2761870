import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useParams } from "wouter";
import { cancelTask, redriveTask, useTask, useTaskEvents } from "../api";
import { fmtMs, fmtTime, show } from "../format";
import { live } from "../live";
import { Badge, Button, Card, ErrorLine, Pre, STATUS_TONE, TD, TH } from "../ui";

export function TaskPage() {
  const { id: raw = "" } = useParams<{ id: string }>();
  const id = decodeURIComponent(raw);
  const task = useTask(id, true);
  const events = useTaskEvents(id);
  const client = useQueryClient();
  const [cancelError, setCancelError] = useState<unknown>(null);

  useEffect(
    () =>
      live.onEvent((e) => {
        if (e.task_id === id) {
          void client.invalidateQueries({ queryKey: ["task", id] });
          void client.invalidateQueries({ queryKey: ["task-events", id] });
        }
      }),
    [id, client],
  );

  if (task.error) return <ErrorLine error={task.error} />;
  const t = task.data;
  if (!t) return <p className="text-slate-500">Loading…</p>;
  const ran = t.started_ms && t.finished_ms ? fmtMs(t.finished_ms - t.started_ms) : "–";

  return (
    <>
      <Card
        title={<span className="mono break-all" data-testid="task-id">{t.id}</span>}
        actions={
          ["queued", "scheduled", "running"].includes(t.status) ? (
            <Button
              kind="danger"
              onClick={() => {
                setCancelError(null);
                cancelTask(t.id)
                  .then(() => client.invalidateQueries({ queryKey: ["task", id] }))
                  .catch(setCancelError);
              }}
            >
              Cancel
            </Button>
          ) : t.status === "dead" ? (
            <Button
              testid="task-redrive"
              onClick={() => {
                setCancelError(null);
                redriveTask(t.queue, t.id)
                  .then(() => client.invalidateQueries({ queryKey: ["task", id] }))
                  .catch(setCancelError);
              }}
            >
              Re-drive
            </Button>
          ) : null
        }
      >
        <ErrorLine error={cancelError} />
        <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm sm:grid-cols-[max-content_1fr_max-content_1fr]">
          <dt className="text-slate-500">Status</dt>
          <dd>
            <Badge tone={STATUS_TONE[t.status]} testid="task-status">
              {t.status}
            </Badge>
            {t.cancel_requested && <Badge tone="amber">cancel requested</Badge>}
          </dd>
          <dt className="text-slate-500">Name</dt>
          <dd className="mono">{t.name}</dd>
          <dt className="text-slate-500">Queue</dt>
          <dd>
            <Link href={`/queues/${encodeURIComponent(t.queue)}`} className="text-indigo-600 hover:underline dark:text-indigo-400">
              {t.queue}
            </Link>
          </dd>
          <dt className="text-slate-500">Priority</dt>
          <dd>{t.priority}</dd>
          <dt className="text-slate-500">Attempts</dt>
          <dd data-testid="task-attempts">
            {t.attempts} of {t.max_retries + 1}
          </dd>
          <dt className="text-slate-500">Worker</dt>
          <dd className="mono">{t.worker ?? "–"}</dd>
          <dt className="text-slate-500">Enqueued</dt>
          <dd>{fmtTime(t.enqueued_ms)}</dd>
          <dt className="text-slate-500">Due</dt>
          <dd>{fmtTime(t.due_ms)}</dd>
          <dt className="text-slate-500">Started</dt>
          <dd>{fmtTime(t.started_ms)}</dd>
          <dt className="text-slate-500">Finished</dt>
          <dd>
            {fmtTime(t.finished_ms)} (ran {ran})
          </dd>
          {Object.keys(t.meta).length > 0 && (
            <>
              <dt className="text-slate-500">Meta</dt>
              <dd className="mono">{show(t.meta)}</dd>
            </>
          )}
        </dl>
      </Card>
      <div className="grid gap-4 md:grid-cols-2">
        <Card title="Arguments">
          <Pre testid="task-args">{show({ args: t.args, kwargs: t.kwargs })}</Pre>
        </Card>
        <Card title="Result">
          <Pre testid="task-result">{t.status === "succeeded" ? show(t.result) : "–"}</Pre>
        </Card>
      </div>
      {(t.error || t.traceback) && (
        <Card title={<span className="text-rose-600 dark:text-rose-400">{t.error_type ?? "Error"}</span>}>
          <Pre testid="task-error">{t.error ?? ""}</Pre>
          {t.traceback && (
            <details className="mt-2" open>
              <summary className="cursor-pointer text-sm text-slate-500">Traceback</summary>
              <Pre>{t.traceback}</Pre>
            </details>
          )}
        </Card>
      )}
      <Card title="Timeline">
        <ErrorLine error={events.error} />
        <table className="w-full text-sm" data-testid="timeline">
          <thead>
            <tr>
              <th className={TH}>Time</th>
              <th className={TH}>Event</th>
              <th className={TH}>Attempt</th>
              <th className={TH}>Worker</th>
            </tr>
          </thead>
          <tbody>
            {(events.data ?? []).map((e) => (
              <tr key={e.cursor} className="border-t border-slate-100 dark:border-slate-800">
                <td className={`${TD} tabular-nums`}>{fmtTime(e.timestamp_ms)}</td>
                <td className={TD}>
                  <Badge tone={STATUS_TONE[e.type] ?? (e.type === "failed" ? "red" : "slate")}>{e.type}</Badge>
                </td>
                <td className={TD}>{e.attempt}</td>
                <td className={`${TD} mono`}>{e.worker ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {events.data?.length === 0 && <p className="text-sm text-slate-500">No events kept for this task (the stream is capped).</p>}
      </Card>
    </>
  );
}
