import { useMemo, useState } from "react";
import { Link } from "wouter";
import type uPlot from "uplot";
import { Chart } from "../Chart";
import { depthSegments, fmtMs, fmtRate, fmtTime, priorityColor, rate, windowOf, type Point } from "../format";
import { useLive } from "../live";
import type { QueueSnap } from "../types";
import { Badge, Card, Stat, TaskLink, TD, TH } from "../ui";

function DepthBar({ q }: { q: QueueSnap }) {
  const segments = depthSegments(q.by_priority);
  const total = segments.reduce((n, [, c]) => n + c, 0);
  if (!total) return <div className="h-4 rounded bg-slate-100 dark:bg-slate-800" />;
  return (
    <div className="flex h-4 overflow-hidden rounded" role="img" aria-label={segments.map(([p, n]) => `priority ${p}: ${n}`).join(", ")}>
      {segments.map(([p, n]) => (
        <div key={p} title={`priority ${p}: ${n}`} style={{ width: `${(100 * n) / total}%`, background: priorityColor(p) }} className="min-w-[2px]" />
      ))}
    </div>
  );
}

function series(points: Point[], keys: (keyof Point)[]): uPlot.AlignedData {
  return [points.map((p) => p.t), ...keys.map((k) => points.map((p) => p[k] as number | null))];
}

export function Overview() {
  const { snapshot, history, version, events } = useLive();
  const [picked, setPicked] = useState<string | null>(null);
  const queues = useMemo(() => snapshot?.queues ?? [], [snapshot]);
  const chosen = picked ?? queues[0]?.queue ?? null;
  const points = chosen ? (history.get(chosen) ?? []) : [];
  // eslint-disable-next-line react-hooks/exhaustive-deps -- history is mutated in place; version says when
  const charts = useMemo(() => ({ thr: series(points, ["throughput"]), wait: series(points, ["waitP50", "waitP99"]), run: series(points, ["runP50", "runP99"]), depth: series(points, ["queued"]) }), [chosen, version]);

  if (!snapshot) return <p className="text-slate-500">Waiting for the first snapshot…</p>;
  const sum = (f: (q: QueueSnap) => number) => queues.reduce((n, q) => n + f(q), 0);
  const alive = snapshot.workers.filter((w) => w.health === "alive").length;

  return (
    <>
      <Card>
        <div className="grid grid-cols-2 gap-4 sm:grid-cols-3 lg:grid-cols-6">
          <Stat label="Queued" value={sum((q) => q.queued)} testid="total-queued" />
          <Stat label="Scheduled" value={sum((q) => q.scheduled)} testid="total-scheduled" />
          <Stat label="Running" value={sum((q) => q.running)} testid="total-running" />
          <Stat label="Dead" value={sum((q) => q.dead)} testid="total-dead" />
          <Stat label="Succeeded" value={sum((q) => q.counters.succeeded ?? 0)} testid="total-succeeded" />
          <Stat label="Workers alive" value={`${alive} / ${snapshot.workers.length}`} testid="workers-alive" />
        </div>
      </Card>

      <Card title="Queues">
        {queues.length === 0 ? (
          <p className="text-sm text-slate-500">No queues yet: submit a task.</p>
        ) : (
          <div className="overflow-x-auto">
            <table className="w-full text-sm">
              <thead>
                <tr>
                  <th className={TH}>Queue</th>
                  <th className={`${TH} w-1/4`}>Depth by priority</th>
                  <th className={TH}>Queued</th>
                  <th className={TH}>Sched.</th>
                  <th className={TH}>Running</th>
                  <th className={TH}>Dead</th>
                  <th className={TH}>Done/s (10 s)</th>
                  <th className={TH}>Wait P50 / P99</th>
                  <th className={TH}>Run P50 / P99</th>
                  <th className={TH}>Oldest lease</th>
                </tr>
              </thead>
              <tbody>
                {queues.map((q) => {
                  const w = windowOf(q, 10) ?? q.windows[0];
                  const oldest = Math.max(0, ...q.running_tasks.map((r) => r.age_ms ?? 0));
                  return (
                    <tr key={q.queue} data-testid={`queue-row-${q.queue}`} className={`border-t border-slate-100 dark:border-slate-800 ${q.queue === chosen ? "bg-indigo-50/60 dark:bg-indigo-950/30" : ""}`} onClick={() => setPicked(q.queue)}>
                      <td className={TD}>
                        <Link href={`/queues/${encodeURIComponent(q.queue)}`} className="font-medium text-indigo-600 hover:underline dark:text-indigo-400">
                          {q.queue}
                        </Link>
                      </td>
                      <td className={`${TD} py-2`}>
                        <DepthBar q={q} />
                      </td>
                      <td className={`${TD} tabular-nums`} data-testid={`q-${q.queue}-queued`}>{q.queued}</td>
                      <td className={`${TD} tabular-nums`} data-testid={`q-${q.queue}-scheduled`}>{q.scheduled}</td>
                      <td className={`${TD} tabular-nums`} data-testid={`q-${q.queue}-running`}>{q.running}</td>
                      <td className={`${TD} tabular-nums`} data-testid={`q-${q.queue}-dead`}>
                        {q.dead > 0 ? <Link href={`/dead/${encodeURIComponent(q.queue)}`} className="text-rose-600 hover:underline dark:text-rose-400">{q.dead}</Link> : 0}
                      </td>
                      <td className={`${TD} tabular-nums`}>{fmtRate(rate(w, "succeeded") + rate(w, "dead"))}</td>
                      <td className={`${TD} tabular-nums whitespace-nowrap`}>
                        {fmtMs(w?.latency.wait?.p50_ms)} / {fmtMs(w?.latency.wait?.p99_ms)}
                      </td>
                      <td className={`${TD} tabular-nums whitespace-nowrap`}>
                        {fmtMs(w?.latency.run?.p50_ms)} / {fmtMs(w?.latency.run?.p99_ms)}
                      </td>
                      <td className={`${TD} tabular-nums`}>{q.running_tasks.length ? fmtMs(oldest) : "–"}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            <p className="mt-2 flex flex-wrap items-center gap-1 text-xs text-slate-500">
              Priority:
              {[10, 8, 6, 4, 2, 1].map((p) => (
                <span key={p} className="inline-flex items-center gap-1">
                  <span className="inline-block h-2 w-3 rounded-sm" style={{ background: priorityColor(p) }} />
                  {p}
                </span>
              ))}
            </p>
          </div>
        )}
      </Card>

      {chosen && (
        <div className="space-y-2">
          <h2 className="text-sm font-semibold text-slate-600 dark:text-slate-300">
            Live: <span className="mono">{chosen}</span> (click a queue's row to switch; 10-second windows)
          </h2>
          <div className="grid gap-4 md:grid-cols-2">
            <Chart title="Throughput (tasks/s)" unit="" series={[{ label: "done/s", color: "#4f46e5" }]} data={charts.thr} testid="chart-throughput" />
            <Chart title="Queued" unit="" series={[{ label: "queued", color: "#0891b2" }]} data={charts.depth} />
            <Chart title="Queue wait" unit="ms" series={[{ label: "P50", color: "#16a34a" }, { label: "P99", color: "#dc2626", dash: [6, 4] }]} data={charts.wait} />
            <Chart title="Run time" unit="ms" series={[{ label: "P50", color: "#16a34a" }, { label: "P99", color: "#dc2626", dash: [6, 4] }]} data={charts.run} />
          </div>
        </div>
      )}

      <Card title="Recent events">
        {events.length === 0 ? (
          <p className="text-sm text-slate-500">Events appear here as they happen.</p>
        ) : (
          <ul className="max-h-72 space-y-0.5 overflow-auto text-sm" data-testid="events">
            {events.slice(0, 50).map((e) => (
              <li key={e.cursor} className="flex flex-wrap gap-2" data-type={e.type} data-task={e.task_id}>
                <span className="tabular-nums text-slate-500">{fmtTime(e.timestamp_ms)}</span>
                <Badge tone={e.type === "succeeded" ? "green" : e.type === "dead" || e.type === "failed" ? "red" : e.type === "started" ? "blue" : "slate"}>{e.type}</Badge>
                <TaskLink id={e.task_id} />
                {e.priority !== null && <span className="text-slate-500">p{e.priority}</span>}
              </li>
            ))}
          </ul>
        )}
      </Card>
    </>
  );
}
