// Small shared pieces of the layout.
import type { ReactNode } from "react";
import { Link } from "wouter";

export function Card({ title, children, actions, testid }: { title?: ReactNode; children: ReactNode; actions?: ReactNode; testid?: string }) {
  return (
    <section className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm dark:border-slate-800 dark:bg-slate-900" data-testid={testid}>
      {(title || actions) && (
        <div className="mb-3 flex flex-wrap items-center justify-between gap-2">
          {title && <h2 className="text-base font-semibold">{title}</h2>}
          {actions}
        </div>
      )}
      {children}
    </section>
  );
}

export function Stat({ label, value, testid }: { label: string; value: ReactNode; testid?: string }) {
  return (
    <div className="min-w-0">
      <div className="text-xs uppercase tracking-wide text-slate-500 dark:text-slate-400">{label}</div>
      <div className="text-xl font-semibold tabular-nums" data-testid={testid}>
        {value}
      </div>
    </div>
  );
}

const TONES: Record<string, string> = {
  green: "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300",
  amber: "bg-amber-100 text-amber-800 dark:bg-amber-900/50 dark:text-amber-300",
  red: "bg-rose-100 text-rose-800 dark:bg-rose-900/50 dark:text-rose-300",
  blue: "bg-sky-100 text-sky-800 dark:bg-sky-900/50 dark:text-sky-300",
  slate: "bg-slate-100 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
};

export const STATUS_TONE: Record<string, keyof typeof TONES> = {
  succeeded: "green",
  alive: "green",
  live: "green",
  running: "blue",
  queued: "slate",
  scheduled: "slate",
  stale: "amber",
  reconnecting: "amber",
  polling: "amber",
  connecting: "amber",
  dead: "red",
  gone: "red",
  cancelled: "slate",
};

export function Badge({ children, tone, testid }: { children: ReactNode; tone?: string; testid?: string }) {
  return (
    <span className={`inline-block rounded px-2 py-0.5 text-xs font-medium ${TONES[tone ?? "slate"] ?? TONES.slate}`} data-testid={testid}>
      {children}
    </span>
  );
}

export function Button({
  children,
  onClick,
  kind = "default",
  disabled,
  type = "button",
  testid,
}: {
  children: ReactNode;
  onClick?: () => void;
  kind?: "default" | "primary" | "danger";
  disabled?: boolean;
  type?: "button" | "submit";
  testid?: string;
}) {
  const styles = {
    default: "border border-slate-300 bg-white hover:bg-slate-50 dark:border-slate-700 dark:bg-slate-800 dark:hover:bg-slate-700",
    primary: "bg-indigo-600 text-white hover:bg-indigo-500",
    danger: "bg-rose-600 text-white hover:bg-rose-500",
  }[kind];
  return (
    <button type={type} onClick={onClick} disabled={disabled} data-testid={testid} className={`whitespace-nowrap rounded-md px-3 py-1.5 text-sm font-medium disabled:opacity-50 ${styles}`}>
      {children}
    </button>
  );
}

export function TaskLink({ id }: { id: string }) {
  return (
    <Link href={`/tasks/${encodeURIComponent(id)}`} className="mono text-indigo-600 hover:underline dark:text-indigo-400">
      {id}
    </Link>
  );
}

export function Pre({ children, testid }: { children: string; testid?: string }) {
  return (
    <pre className="mono max-h-96 overflow-auto rounded bg-slate-100 p-2 text-xs whitespace-pre-wrap break-all dark:bg-slate-800" data-testid={testid}>
      {children}
    </pre>
  );
}

export function ErrorLine({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p role="alert" className="text-sm text-rose-600 dark:text-rose-400">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}

export const TH = "px-2 py-1 text-left text-xs font-semibold uppercase tracking-wide text-slate-500 dark:text-slate-400";
export const TD = "px-2 py-1 align-top";
