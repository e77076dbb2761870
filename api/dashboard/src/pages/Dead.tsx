import { useState } from "react";
import { useLocation, useParams } from "wouter";
import { useDead, useDeadAction, type DeadSelector } from "../api";
import { fmtTime, groupByError } from "../format";
import { useLive } from "../live";
import { Badge, Button, Card, ErrorLine, TaskLink, TD, TH } from "../ui";

export function DeadPage() {
  const params = useParams<{ queue?: string }>();
  const [, navigate] = useLocation();
  const { snapshot } = useLive();
  const queues = snapshot?.queues ?? [];
  const queue = params.queue ?? queues.find((q) => q.dead > 0)?.queue ?? queues[0]?.queue ?? "";

  return (
    <>
      <Card title="Dead letters">
        <label className="flex items-center gap-2 text-sm">
          Queue
          <select
            value={queue}
            onChange={(e) => navigate(`/dead/${encodeURIComponent(e.target.value)}`)}
            className="rounded-md border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-800"
          >
            {queues.map((q) => (
              <option key={q.queue} value={q.queue}>
                {q.queue} ({q.dead} dead)
              </option>
            ))}
          </select>
        </label>
      </Card>
      {queue && <DeadList key={queue} queue={queue} />}
    </>
  );
}

function DeadList({ queue }: { queue: string }) {
  const dead = useDead(queue);
  const redrive = useDeadAction(queue, "redrive");
  const purge = useDeadAction(queue, "purge");
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirm, setConfirm] = useState<{ sel: DeadSelector; what: string } | null>(null);
  const [message, setMessage] = useState("");
  const rows = dead.data ?? [];
  const groups = groupByError(rows);

  const run = (action: "redrive" | "purge", sel: DeadSelector) =>
    (action === "redrive" ? redrive : purge).mutate(sel, {
      onSuccess: (r) => {
        setMessage(`${action === "redrive" ? "Re-drove" : "Purged"} ${r.count} task${r.count === 1 ? "" : "s"}.`);
        setSelected(new Set());
      },
    });
  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };

  return (
    <>
      <Card title="By error type">
        {groups.length === 0 && <p className="text-sm text-slate-500">No dead tasks in {queue}.</p>}
        <ul className="space-y-2">
          {groups.map((g) => (
            <li key={g.errorType} className="flex flex-wrap items-center gap-2 text-sm">
              <Badge tone="red">{g.errorType}</Badge>
              <span className="tabular-nums">× {g.count}</span>
              <span className="mono truncate text-slate-500">{g.example}</span>
              <span className="ml-auto">
                <Button onClick={() => run("redrive", { error_type: g.errorType })}>Re-drive these</Button>
              </span>
            </li>
          ))}
        </ul>
      </Card>
      <Card
        title={`Dead tasks (${rows.length})`}
        actions={
          <div className="flex flex-wrap gap-2">
            <Button disabled={!selected.size} onClick={() => run("redrive", { ids: [...selected] })} testid="redrive-selected">
              Re-drive selected ({selected.size})
            </Button>
            <Button disabled={!rows.length} onClick={() => run("redrive", { all: true })} testid="redrive-all">
              Re-drive all
            </Button>
            <Button kind="danger" disabled={!selected.size} onClick={() => setConfirm({ sel: { ids: [...selected] }, what: `${selected.size} selected` })}>
              Purge selected
            </Button>
            <Button kind="danger" disabled={!rows.length} onClick={() => setConfirm({ sel: { all: true }, what: `all ${rows.length}` })} testid="purge-all">
              Purge all
            </Button>
          </div>
        }
      >
        {message && (
          <p className="mb-2 text-sm text-emerald-700 dark:text-emerald-400" role="status">
            {message}
          </p>
        )}
        <ErrorLine error={dead.error ?? redrive.error ?? purge.error} />
        {confirm && (
          <div role="alertdialog" className="mb-3 flex flex-wrap items-center gap-2 rounded-md border border-rose-300 bg-rose-50 p-3 text-sm dark:border-rose-800 dark:bg-rose-950/40">
            Delete {confirm.what} dead task(s) of <span className="mono">{queue}</span> for good?
            <Button
              kind="danger"
              testid="purge-confirm"
              onClick={() => {
                run("purge", confirm.sel);
                setConfirm(null);
              }}
            >
              Yes, purge
            </Button>
            <Button onClick={() => setConfirm(null)}>No</Button>
          </div>
        )}
        <div className="overflow-x-auto">
          <table className="w-full text-sm" data-testid="dead-table">
            <thead>
              <tr>
                <th className={TH}></th>
                <th className={TH}>Task</th>
                <th className={TH}>Name</th>
                <th className={TH}>Attempts</th>
                <th className={TH}>Error</th>
                <th className={TH}>Died</th>
                <th className={TH}></th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.id} className="border-t border-slate-100 dark:border-slate-800">
                  <td className={TD}>
                    <input type="checkbox" aria-label={`select ${d.id}`} checked={selected.has(d.id)} onChange={() => toggle(d.id)} />
                  </td>
                  <td className={TD}>
                    <TaskLink id={d.id} />
                  </td>
                  <td className={`${TD} mono`}>{d.name}</td>
                  <td className={`${TD} tabular-nums`}>{d.attempts}</td>
                  <td className={`${TD} mono max-w-md truncate`}>
                    {d.error_type}: {d.error}
                  </td>
                  <td className={TD}>{fmtTime(d.finished_ms)}</td>
                  <td className={TD}>
                    <Button onClick={() => run("redrive", { ids: [d.id] })} testid={`redrive-${d.id}`}>
                      Re-drive
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Card>
    </>
  );
}
