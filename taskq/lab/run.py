"""Real runs: :func:`run` sends a workload's plan through real taskq workers on a real Redis
and returns the frame the simulator returns (:data:`taskq.lab.model.FRAME_COLUMNS`), so the
two can be set side by side.

How one run (one configuration, one repeat) goes:

* **A fresh namespace.** A client with a key prefix of its own (``taskq-lab-<random>``) on the
  given server, or the one ``TaskQueue()`` finds (an explicit URL, ``TASKQ_REDIS_URL``, a local
  Redis, else the embedded server). Nothing is flushed; every key of the prefix is deleted
  when the run ends, whether it succeeded or not.
* **Workers in this process.** ``config.workers`` :class:`taskq.Worker` objects, each with
  ``config.concurrency`` slots, all on one asyncio loop in one thread of this process (not
  separate processes: they share one CPU core and Python's GIL, which is what you measure
  when ``workers > 1``). The queues get ``config.aging_s`` through ``configure_queue``,
  ``config.queue_weights`` becomes the workers' weighted queue order, and the task is
  registered with ``config.max_retries`` and ``config.backoff``. ``config.batch`` caps what
  one claim call takes (taskq's worker otherwise asks for as many as it has free slots).
* **The task.** An ``async`` function that sleeps its planned service time
  (``asyncio.sleep``, so it holds a slot and not a thread) and raises when the plan says this
  attempt fails.
* **An open-loop producer.** Each planned task is enqueued at its planned arrival instant,
  whether or not earlier enqueues have returned (they overlap, and the client batches them),
  so a slow queue does not slow the arrivals down.
* **Times from the queue, not from the task.** Every time in the frame comes from the
  queue's events stream (``events()``), stamped by the Redis server's clock in milliseconds:
  ``enqueued`` (enqueue_s), ``started`` (the claim: claim_s, the worker, the attempt),
  ``queued`` / ``requeued`` (ready_s of a retry or a requeue) and the attempt's end
  (``succeeded``, ``retried``, ``dead``, ``requeued``: when the worker's batched write of the
  outcome landed, a millisecond or so after the function returned). taskq records no separate "the
  function began" time, so start_s is the claim (the function begins on the same loop right
  after the claim returns). Times are seconds from the run's start, the server's clock when
  the producer began. The client's ``events_maxlen`` is sized (:func:`events_maxlen`) so
  that the stream keeps every event of the run: a trimmed one would lose the first tasks.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import taskq
from taskq import AsyncTaskQueue, Event, TaskQueue, Worker, current_task
from taskq.lab.model import Config, LabError, Workload, check_configs, frame_attrs, make_frame

#: The name the lab's task is registered under.
TASK_NAME = "taskq.lab.planned"
#: What ends an attempt, as an event type, and the frame's outcome for it.
END_EVENTS = {"succeeded": "succeeded", "retried": "failed", "dead": "dead", "requeued": "expired"}
#: The most events one entry of a queue's events stream holds (``EVENTS_PER_ENTRY`` in
#: taskq/lua/lib/common.lua; a test checks the two agree).
EVENTS_PER_ENTRY = 100


class PlannedFailure(Exception):
    """Raised by the lab's task on an attempt its plan says fails."""


async def planned(task: int, service_s: float, fails: int) -> int:
    """The lab's task: sleep ``service_s``, then fail if this attempt is one of the first
    ``fails``; return the plan's task number."""
    await asyncio.sleep(service_s)
    ctx = current_task()
    attempt = ctx.attempt if ctx is not None else 1
    if attempt <= fails:
        raise PlannedFailure(f"task {task}: attempt {attempt} fails by plan ({fails} planned)")
    return task


class _LabWorker(Worker):
    """A taskq worker whose claim calls take at most ``batch`` tasks (``None``: as many as
    it has free slots, the worker's own rule). Everything else is the worker as shipped."""

    def __init__(self, app: Any, *, batch: int | None, **settings: Any) -> None:
        super().__init__(app, **settings)
        self.batch = batch

    async def _claim(self, free: int) -> tuple[list[Any], int, bool]:
        return await super()._claim(free if self.batch is None else min(free, self.batch))


@dataclass
class _Attempt:
    ready_ms: int
    claim_ms: int
    worker: str
    end_ms: int | None = None
    outcome: str | None = None


@dataclass
class _Trace:
    """One task's life, from its events."""

    enqueue_ms: int | None = None
    ready_ms: int | None = None  # when the next attempt became claimable
    attempts: dict[int, _Attempt] = field(default_factory=dict)


def rows_from_events(
    events: Iterable[Event], tasks: Mapping[str, int], plan: pd.DataFrame, start_ms: float, config: str, repeat: int
) -> list[dict[str, Any]]:
    """The frame's rows (one per attempt) from a run's events: ``tasks`` maps taskq's task
    ids to plan task numbers, ``start_ms`` is the run's time 0 on the server's clock."""
    traces: dict[str, _Trace] = {task_id: _Trace() for task_id in tasks}
    for event in events:
        trace = traces.get(event.task_id)
        if trace is None:
            continue
        ms = event.timestamp_ms
        if event.type == "enqueued":
            trace.enqueue_ms = trace.ready_ms = ms
        elif event.type == "queued":  # a retry became due
            trace.ready_ms = ms
        elif event.type == "started" and event.attempt is not None:
            ready = trace.ready_ms if trace.ready_ms is not None else ms
            trace.attempts[event.attempt] = _Attempt(ready, ms, event.worker or "-")
        if event.type in END_EVENTS and event.attempt in trace.attempts:
            attempt = trace.attempts[event.attempt]
            attempt.end_ms, attempt.outcome = ms, END_EVENTS[event.type]
            if event.type == "requeued":  # back in the queue at once: the next attempt's ready time
                trace.ready_ms = ms
    rows = []
    for task_id, number in tasks.items():
        trace, planned_row = traces[task_id], plan.iloc[number]
        unfinished = [n for n, a in trace.attempts.items() if a.outcome is None]
        if trace.enqueue_ms is None or not trace.attempts or unfinished:
            raise LabError(
                f"run {config!r}: task {number} has no complete record in the events stream (was it trimmed?)"
            )
        for n, a in sorted(trace.attempts.items()):
            rows.append(
                {
                    "config": config,
                    "repeat": repeat,
                    "task": number,
                    "queue": planned_row["queue"],
                    "priority": int(planned_row["priority"]),
                    "attempt": n,
                    "worker": a.worker,
                    "enqueue_s": (trace.enqueue_ms - start_ms) / 1000,
                    "ready_s": (a.ready_ms - start_ms) / 1000,
                    "claim_s": (a.claim_ms - start_ms) / 1000,
                    "start_s": (a.claim_ms - start_ms) / 1000,
                    "end_s": (a.end_ms - start_ms) / 1000 if a.end_ms is not None else math.nan,
                    "outcome": a.outcome,
                }
            )
    return rows


def slot_overhead_s(measured: pd.DataFrame, workload: Workload) -> float:
    """How much longer, on average, an attempt of a real run held its slot (claim to the
    recorded end) than the service time its plan gave it: the claim's round trip, the
    sleep's overshoot, the outcome's write and whatever the machine's load added. Pass it
    as ``simulate(..., claim_rtt_s=...)`` to give the simulator the real run's cost per task
    (notebook 8 feeds M/M/c the measured service time the same way)."""
    plans = {r: workload.tasks(r).set_index("task")["service_s"] for r in sorted(set(measured["repeat"]))}
    planned = [plans[int(r)][int(t)] for r, t in zip(measured["repeat"], measured["task"], strict=True)]
    return max(0.0, float((measured["end_s"] - measured["claim_s"]).mean() - sum(planned) / len(planned)))


def events_maxlen(plan: pd.DataFrame, config: Config) -> int:
    """An ``events_maxlen`` under which a run's events stream is never trimmed.

    A script writing an entry of k events trims the stream to about ``events_maxlen / k``
    entries (``MAXLEN ~``: "about events_maxlen events" if every entry were that size). One
    big entry (a burst of enqueues the client batched, a flush of many outcomes) after many
    small ones (one task claimed or finished at a time) then cuts the oldest entries, the
    first tasks' events, and the run cannot rebuild their rows. Entries are never more than
    events, so a cap of EVENTS_PER_ENTRY x (an upper bound on the run's events) keeps them
    all: per task its ``enqueued``, per attempt ``started``, the end and a retry's
    ``queued``, and one more for a release or a requeue; plus room for anything else."""
    attempts = config.max_retries + 1
    events = len(plan) * (1 + 4 * attempts) + 1000
    return EVENTS_PER_ENTRY * events


def _time_bound_s(plan: pd.DataFrame, config: Config) -> float:
    """How long a run may take before it counts as stuck: generous, it only stops a hang."""
    work_s = float((plan["service_s"] * (plan["fails"].clip(upper=config.max_retries) + 1)).sum())
    retry_s = config.max_retries * config.backoff.cap_s
    return 30.0 + 3.0 * (float(plan["arrival_s"].max()) + work_s / config.slots + retry_s)


async def _delete_prefix(app: AsyncTaskQueue, prefix: str) -> int:
    found = [key async for key in app.redis.scan_iter(match=f"{prefix}:*", count=1000)]
    deleted = 0
    for i in range(0, len(found), 500):
        deleted += int(await app.redis.delete(*found[i : i + 500]))
    return deleted


async def _produce(app: AsyncTaskQueue, plan: pd.DataFrame, start: float) -> dict[str, int]:
    """Enqueue each planned task at its arrival instant (``start`` on the loop's clock);
    the task ids, each to its plan number."""
    loop = asyncio.get_running_loop()
    sends: list[asyncio.Task[Any]] = []
    for row in plan.itertuples(index=False):
        delay = start + float(row.arrival_s) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        args = [int(row.task), float(row.service_s), int(row.fails)]
        sends.append(
            asyncio.ensure_future(app.enqueue(TASK_NAME, args=args, queue=str(row.queue), priority=int(row.priority)))
        )
    handles = await asyncio.gather(*sends)
    return {handle.id: int(number) for handle, number in zip(handles, plan["task"], strict=True)}


async def _run_one(
    url: str, queues: list[str], config: Config, repeat: int, plan: pd.DataFrame
) -> list[dict[str, Any]]:
    prefix = f"taskq-lab-{os.urandom(6).hex()}"
    app = AsyncTaskQueue(url, prefix=prefix, default_queue=queues[0], events_maxlen=events_maxlen(plan, config))
    app.task(name=TASK_NAME, max_retries=config.max_retries, backoff=config.backoff)(planned)
    order: Any = dict(config.queue_weights) if config.queue_weights else queues
    workers = [
        _LabWorker(
            app,
            batch=config.batch,
            queues=order,
            concurrency=config.concurrency,
            lease_s=config.lease_s,
            grace_s=1.0,
            worker_id=f"w{i}",
        )
        for i in range(config.workers)
    ]
    runs: list[asyncio.Task[None]] = []
    try:
        if config.aging_s is not None:
            for queue in queues:
                await app.configure_queue(queue, aging_s=config.aging_s)
        runs = [asyncio.create_task(w.run()) for w in workers]
        loop = asyncio.get_running_loop()
        bound_s = _time_bound_s(plan, config)
        while len({w.id for w in await app.workers()}) < len(workers):
            if any(r.done() for r in runs):
                await asyncio.gather(*runs)  # raises the worker's error
            await asyncio.sleep(0.01)
        seconds, micros = await app.redis.time()
        start, start_ms = loop.time(), seconds * 1000 + micros / 1000
        tasks = await _produce(app, plan, start)
        while sum([(await app.stats(q)).pending for q in queues]) > 0:
            if loop.time() - start > bound_s:
                raise LabError(f"run {config.name!r} (repeat {repeat}): tasks still pending after {bound_s:.0f} s")
            if any(r.done() for r in runs):
                await asyncio.gather(*runs)
                raise LabError(f"run {config.name!r}: a worker stopped before the tasks were done")
            await asyncio.sleep(0.02)
        for w in workers:
            w.request_stop()
        await asyncio.gather(*runs)
        events = [e async for e in app.events(queues, since="0", follow=False)]
        return rows_from_events(events, tasks, plan, start_ms, config.name, repeat)
    finally:
        for w in workers:
            w.request_stop(0)
        await asyncio.gather(*runs, return_exceptions=True)
        await _delete_prefix(app, prefix)
        await app.aclose()


def _server_version(url: str | None) -> tuple[str, str, str]:
    """The URL ``TaskQueue()`` settles on, the server's kind and its version."""
    with TaskQueue(url) as tq:
        try:
            info = tq.redis.info("server")
            version = str(info.get("valkey_version") or info.get("redis_version") or "unknown")
        except Exception:  # noqa: BLE001 - fakeredis has no INFO
            version = "unknown"
        info_ = tq.server_info
        return tq.url, info_.source + (f" ({info_.kind})" if info_.kind else ""), version


def run(
    workload: Workload, configs: Config | Iterable[Config], repeats: int = 1, url: str | None = None
) -> pd.DataFrame:
    """Run ``workload`` through real taskq workers under each of ``configs``, ``repeats``
    times each (repeat r uses the plan ``workload.tasks(r)``, as the simulator does), on the
    server at ``url`` or the one ``TaskQueue()`` finds; one row per attempt (see the module
    docstring for what each time means). ``df.attrs`` holds the seed, workload and
    configurations, the machine (with its load average before and after) and the versions
    (taskq, Python, the libraries, the Redis server).

    Runs one after another; the workers and the producer share one event loop in a thread
    of this process, so it works inside a notebook's running loop too.
    """
    if not isinstance(workload, Workload):
        raise LabError(f"run: workload must be a Workload, got {workload!r}")
    checked = check_configs(configs)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise LabError(f"run: repeats must be an integer >= 1, got {repeats!r}")
    for config in checked:
        unserved = [q for q in workload.queues if config.queue_weights is not None and q not in config.queue_weights]
        if unserved:
            raise LabError(f"config {config.name!r}: queue_weights leave out the workload's queues {unserved}")
    server_url, kind, version = _server_version(url)
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskq-lab-run") as pool:
        for config in checked:
            for repeat in range(repeats):
                plan = workload.tasks(repeat)
                rows += pool.submit(
                    asyncio.run, _run_one(server_url, list(workload.queues), config, repeat, plan)
                ).result()
    attrs = frame_attrs("measured", workload, checked, repeats)
    attrs["machine"].update(
        {"platform": platform.platform(), "load_before": list(load_before), "load_after": list(os.getloadavg())}
    )
    attrs["versions"].update({"redis_server": version, "server": kind, "taskq": taskq.__version__})
    attrs["seeds"] = [[workload.seed, r] for r in range(repeats)]
    attrs["workers_in"] = "one process: Worker objects on one asyncio loop"
    return make_frame(rows, attrs)
