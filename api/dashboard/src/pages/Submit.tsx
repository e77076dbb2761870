import { useState } from "react";
import { useRegistered, useSubmit } from "../api";
import { defaultsOf, parseField } from "../format";
import type { RegisteredTask } from "../types";
import { Button, Card, ErrorLine, TaskLink } from "../ui";

const INPUT = "w-full rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm dark:border-slate-700 dark:bg-slate-800";

function SubmitForm({ task }: { task: RegisteredTask }) {
  const [values, setValues] = useState<Record<string, string>>(() => defaultsOf(task.parameters));
  const [priority, setPriority] = useState(task.priority ?? 5);
  const [delay, setDelay] = useState("0");
  const [submitted, setSubmitted] = useState<string[]>([]);
  const submit = useSubmit();
  const props = task.parameters.properties ?? {};
  const required = new Set(task.parameters.required ?? []);

  return (
    <form
      className="space-y-3"
      data-testid="submit-form"
      onSubmit={(e) => {
        e.preventDefault();
        const kwargs: Record<string, unknown> = {};
        for (const [name, schema] of Object.entries(props)) {
          const text = values[name] ?? "";
          if (text === "" && !required.has(name)) continue;
          kwargs[name] = parseField(text, schema.type);
        }
        submit.mutate(
          { name: task.name, args: [], kwargs, priority, delay_s: Number(delay) || 0 },
          { onSuccess: (r) => setSubmitted((s) => [r.id, ...s].slice(0, 10)) },
        );
      }}
    >
      {Object.entries(props).map(([name, schema]) => (
        <label key={name} className="block text-sm">
          <span className="mono">{name}</span>
          {required.has(name) && <span className="text-rose-600"> *</span>}
          <span className="ml-2 text-xs text-slate-500">{[schema.type ?? schema.anyOf?.map((a) => a.type)].flat().filter(Boolean).join(" | ") || "any JSON"}</span>
          <input name={name} className={INPUT} value={values[name] ?? ""} onChange={(e) => setValues({ ...values, [name]: e.target.value })} />
        </label>
      ))}
      <label className="block text-sm">
        Priority: <span className="font-semibold tabular-nums" data-testid="priority-value">{priority}</span> (10 most urgent)
        <input type="range" min={1} max={10} step={1} name="priority" value={priority} onChange={(e) => setPriority(Number(e.target.value))} className="w-full accent-indigo-600" />
      </label>
      <label className="block text-sm">
        Delay (seconds)
        <input type="number" min={0} step="any" name="delay" className={INPUT} value={delay} onChange={(e) => setDelay(e.target.value)} />
      </label>
      <ErrorLine error={submit.error} />
      <Button type="submit" kind="primary" disabled={submit.isPending} testid="submit-button">
        Submit to {task.queue}
      </Button>
      {submitted.length > 0 && (
        <ul className="text-sm" data-testid="submitted">
          {submitted.map((id) => (
            <li key={id}>
              Submitted <TaskLink id={id} />
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}

export function SubmitPage() {
  const registered = useRegistered();
  const [name, setName] = useState<string | null>(null);
  const tasks = registered.data ?? [];
  const task = tasks.find((t) => t.name === name) ?? tasks[0];
  return (
    <Card title="Submit a task">
      <ErrorLine error={registered.error} />
      {tasks.length === 0 && !registered.isLoading && <p className="text-sm text-slate-500">The served app registers no tasks.</p>}
      {task && (
        <div className="max-w-xl space-y-4">
          <label className="block text-sm">
            Task
            <select name="task" className={INPUT} value={task.name} onChange={(e) => setName(e.target.value)}>
              {tasks.map((t) => (
                <option key={t.name} value={t.name}>
                  {t.name}
                </option>
              ))}
            </select>
          </label>
          <SubmitForm key={task.name} task={task} />
        </div>
      )}
    </Card>
  );
}
