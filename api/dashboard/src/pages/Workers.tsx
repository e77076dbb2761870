import { useWorkers } from "../api";
import { fmtMs, fmtTime } from "../format";
import { useLive } from "../live";
import { Badge, Card, ErrorLine, STATUS_TONE, TaskLink, TD, TH } from "../ui";

export function WorkersPage() {
  const { snapshot, connection } = useLive();
  const rest = useWorkers(connection === "live");
  const workers = (connection === "live" ? snapshot?.workers : rest.data) ?? snapshot?.workers ?? [];
  const order = { alive: 0, stale: 1, gone: 2 } as const;
  const sorted = [...workers].sort((a, b) => order[a.health] - order[b.health] || a.id.localeCompare(b.id));
  return (
    <Card title={`Workers (${workers.filter((w) => w.health === "alive").length} alive)`}>
      <ErrorLine error={rest.error} />
      <div className="overflow-x-auto">
        <table className="w-full text-sm" data-testid="workers-table">
          <thead>
            <tr>
              <th className={TH}>Worker</th>
              <th className={TH}>Health</th>
              <th className={TH}>Host</th>
              <th className={TH}>PID</th>
              <th className={TH}>Queues</th>
              <th className={TH}>Slots</th>
              <th className={TH}>Done / failed</th>
              <th className={TH}>Heartbeat age</th>
              <th className={TH}>Started</th>
              <th className={TH}>Running now</th>
            </tr>
          </thead>
          <tbody>
            {sorted.map((w) => (
              <tr key={w.id} className="border-t border-slate-100 dark:border-slate-800" data-testid={`worker-${w.pid ?? w.id}`}>
                <td className={`${TD} mono`}>{w.id}</td>
                <td className={TD}>
                  <Badge tone={STATUS_TONE[w.health]} testid="worker-health">
                    {w.health}
                  </Badge>
                </td>
                <td className={TD}>{w.host ?? "–"}</td>
                <td className={`${TD} tabular-nums`}>{w.pid ?? "–"}</td>
                <td className={TD}>{w.queues.join(", ")}</td>
                <td className={`${TD} tabular-nums`}>
                  {w.current.length} / {w.concurrency ?? "?"}
                </td>
                <td className={`${TD} tabular-nums`}>
                  {w.processed ?? "–"} / {w.failed ?? "–"}
                </td>
                <td className={`${TD} tabular-nums`}>{fmtMs(w.heartbeat_age_ms)}</td>
                <td className={TD}>{fmtTime(w.started_ms)}</td>
                <td className={TD}>
                  <div className="flex flex-col">
                    {w.current.slice(0, 5).map((id) => (
                      <TaskLink key={id} id={id} />
                    ))}
                    {w.current.length > 5 && <span className="text-slate-500">and {w.current.length - 5} more</span>}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {workers.length === 0 && <p className="p-2 text-sm text-slate-500">No workers registered.</p>}
      </div>
    </Card>
  );
}
