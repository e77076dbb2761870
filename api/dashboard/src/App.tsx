import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, Route, Switch, useLocation } from "wouter";
import { useAuthInfo } from "./api";
import { dismissPrompt, requestToken, setToken, useToken } from "./auth";
import { live, useLive } from "./live";
import { DeadPage } from "./pages/Dead";
import { Overview } from "./pages/Overview";
import { QueuePage } from "./pages/Queue";
import { SubmitPage } from "./pages/Submit";
import { TaskPage } from "./pages/Task";
import { WorkersPage } from "./pages/Workers";
import { Badge, Button, STATUS_TONE } from "./ui";

const NAV = [
  ["/", "Overview"],
  ["/workers", "Workers"],
  ["/dead", "Dead letters"],
  ["/submit", "Submit"],
] as const;

function ThemeToggle() {
  const [dark, setDark] = useState(() => document.documentElement.classList.contains("dark"));
  useEffect(() => {
    document.documentElement.classList.toggle("dark", dark);
  }, [dark]);
  return (
    <button
      type="button"
      aria-label="Toggle dark mode"
      data-testid="theme-toggle"
      className="rounded-md border border-slate-300 px-2 py-1 text-sm dark:border-slate-700"
      onClick={() => {
        localStorage.setItem("taskq.theme", dark ? "light" : "dark");
        setDark(!dark);
      }}
    >
      {dark ? "☀ Light" : "☾ Dark"}
    </button>
  );
}

function ConnectionBadge() {
  const { connection, outage, downDetail } = useLive();
  const label = outage === "redis" ? "Redis unavailable" : outage === "server" ? "server unreachable" : connection;
  return (
    <span title={outage ? downDetail : "Live data: the WebSocket, or REST polling while it is down"}>
      <Badge tone={outage ? "red" : STATUS_TONE[connection]} testid="connection">
        ● {label}
      </Badge>
    </span>
  );
}

function TokenDialog() {
  const { prompt } = useToken();
  const [value, setValue] = useState("");
  const [remember, setRemember] = useState(false);
  const client = useQueryClient();
  if (!prompt) return null;
  return (
    <div className="fixed inset-0 z-50 flex items-center justify-center bg-black/50 p-4" role="dialog" aria-modal="true" aria-labelledby="token-title">
      <form
        className="w-full max-w-sm space-y-3 rounded-lg bg-white p-5 shadow-xl dark:bg-slate-900"
        data-testid="token-dialog"
        onSubmit={(e) => {
          e.preventDefault();
          setToken(value, remember);
          setValue("");
          live.restart();
          void client.invalidateQueries();
        }}
      >
        <h2 id="token-title" className="text-lg font-semibold">
          API token
        </h2>
        <p className="text-sm text-slate-600 dark:text-slate-400">This server needs its bearer token (TASKQ_API_TOKEN). It is kept for this browser session only unless you tick the box.</p>
        <input
          type="password"
          autoFocus
          aria-label="API token"
          data-testid="token-input"
          className="w-full rounded-md border border-slate-300 bg-white px-2 py-1.5 dark:border-slate-700 dark:bg-slate-800"
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} /> Remember on this device
        </label>
        <div className="flex justify-end gap-2">
          <Button onClick={dismissPrompt}>Cancel</Button>
          <Button type="submit" kind="primary" testid="token-save">
            Use token
          </Button>
        </div>
      </form>
    </div>
  );
}

export function App() {
  const [location] = useLocation();
  const auth = useAuthInfo();
  const { token } = useToken();
  useEffect(() => {
    live.start();
    return () => live.stop();
  }, []);
  useEffect(() => {
    if (auth.data?.reads_need_token && !token) requestToken();
  }, [auth.data, token]);

  return (
    <div className="min-h-screen">
      <header className="sticky top-0 z-40 border-b border-slate-200 bg-white/90 backdrop-blur dark:border-slate-800 dark:bg-slate-900/90">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-2">
          <Link href="/" className="text-lg font-bold tracking-tight">
            taskq
          </Link>
          <nav className="flex flex-wrap gap-1 text-sm">
            {NAV.map(([href, label]) => {
              const active = href === "/" ? location === "/" : location.startsWith(href);
              return (
                <Link
                  key={href}
                  href={href}
                  className={`rounded-md px-2 py-1 ${active ? "bg-slate-200 font-semibold dark:bg-slate-800" : "hover:bg-slate-100 dark:hover:bg-slate-800"}`}
                >
                  {label}
                </Link>
              );
            })}
          </nav>
          <div className="ml-auto flex items-center gap-2">
            <ConnectionBadge />
            {auth.data?.token_required && (
              <Button onClick={token ? () => setToken(null) : requestToken} testid="auth-button">
                {token ? "Forget token" : "Sign in"}
              </Button>
            )}
            <ThemeToggle />
          </div>
        </div>
      </header>
      <main className="mx-auto max-w-7xl space-y-4 p-4">
        <Switch>
          <Route path="/" component={Overview} />
          <Route path="/workers" component={WorkersPage} />
          <Route path="/dead" component={DeadPage} />
          <Route path="/dead/:queue" component={DeadPage} />
          <Route path="/submit" component={SubmitPage} />
          <Route path="/queues/:queue" component={QueuePage} />
          <Route path="/tasks/:id" component={TaskPage} />
          <Route>
            <p>
              No such page. <Link href="/">Back to the overview</Link>
            </p>
          </Route>
        </Switch>
      </main>
      <TokenDialog />
    </div>
  );
}
