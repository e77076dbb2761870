"""A discrete-event simulation (SimPy) of taskq serving a :class:`~taskq.lab.Workload`:
:func:`simulate` returns the same frame as a real run, one row per attempt.

What it models, as taskq implements it:

* **The queue order** (``claim.lua``, docs/ARCHITECTURE.md "The queue order"): each queue
  is one ordered set scored ``clock + (10 - priority) x window``, popped from the lowest
  score. With no aging window that is strict priority (10 first) with FIFO ties; with
  ``aging_s`` an older low-priority task overtakes once it waited ``(difference in
  priority) x aging_s`` longer. A retried task gets a fresh clock when it becomes due.
* **The worker** (``worker.py``, ``_claim_loop`` and ``_claim``): ``concurrency`` slots; it
  claims when no task runs or at least ``max(1, concurrency // 4)`` slots are free; one
  claim round asks each queue in the round's order for ``min(free slots left, batch)``
  tasks (batch: taskq's 1000 unless the config caps it); it claims again at once unless
  every queue gave fewer than asked, and otherwise waits for a task to arrive (taskq's
  wake-up) or a retry to come due. The round's order is the queues in order, or with
  ``queue_weights`` a weighted random order drawn the way the worker draws it.
* **Claim cost**: ``claim_rtt_s`` (default 0) is the claim's round trip; the tasks are
  popped half-way (``claim_s``) and start when the reply is back (``start_s``).
* **Failures and retries**: attempt k of a task fails when k <= its planned ``fails``; it
  is retried after the config's backoff (``taskq.Backoff``, jitter included) while
  ``k <= max_retries``, and ends dead otherwise.

Not modelled: leases and dying workers (the plan has no deaths, so no lease expires),
rate limits, the outcome flush's batching, and the wake-up's own latency (fold it into
``claim_rtt_s``). Deterministic: a workload's seed and the repeat fix every draw.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import simpy

from taskq.lab.model import Config, LabError, Workload, check_configs, frame_attrs, make_frame

#: The most tasks one claim takes from a queue (taskq's worker: min(free slots, 1000)).
MAX_BATCH = 1000


def claim_order(queues: Sequence[str], weights: Sequence[int] | None, rng: random.Random) -> list[str]:
    """The order a worker asks its queues in one claim round: as listed, or with weights a
    weighted random order without replacement (Efraimidis-Spirakis keys ``u ** (1 / w)``,
    largest first), drawn as taskq's worker draws it (``QueueSelection.claim_order``; a test
    checks the two agree)."""
    if weights is None:
        return list(queues)
    keyed = sorted(zip(queues, weights, strict=True), key=lambda qw: -(rng.random() ** (1 / qw[1])))
    return [q for q, _ in keyed]


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


@dataclass(slots=True)
class _Task:
    index: int
    queue: str
    priority: int
    arrival_s: float
    service_s: float
    fails: int
    attempt: int = 0
    ready_s: float = 0.0


class _Run:
    """One configuration over one repeat's plan."""

    def __init__(self, workload: Workload, config: Config, plan: pd.DataFrame, repeat: int, claim_rtt_s: float):
        self.env = simpy.Environment()
        self.config = config
        self.repeat = repeat
        self.half_rtt_s = claim_rtt_s / 2
        if config.queue_weights is None:
            self.order: list[str] = list(workload.queues)
            self.weights: list[int] | None = None
        else:
            self.order, self.weights = list(config.queue_weights), list(config.queue_weights.values())
        self.queues: dict[str, list[tuple[tuple[float, ...], int, _Task]]] = {q: [] for q in self.order}
        self.seq = 0
        self.work: simpy.Event = self.env.event()
        self.work_taken = False  # a worker holds self.work: a push must trigger it
        self.attempts: list[tuple[int, int, str, float, float, float, float, str]] = []
        self.plan = plan
        self.left = len(plan)
        self.done = self.env.event()
        self.backoff_rng = random.Random(_seed(workload.seed, repeat, 7))
        columns = ("task", "queue", "priority", "arrival_s", "service_s", "fails")
        self.tasks = [_Task(*row) for row in zip(*(plan[c].tolist() for c in columns), strict=True)]
        self.next_arrival = 0
        self._arrive(None)
        for w in range(config.workers):
            self.env.process(self._worker(f"w{w}", random.Random(_seed(workload.seed, repeat, 100 + w))))

    def run(self) -> dict[str, Any]:
        """Run to the end; the attempts' columns (FRAME_COLUMNS but the derived ones)."""
        self.env.run(until=self.done)
        index, attempt, worker, ready, claim, start, end, outcome = (list(c) for c in zip(*self.attempts, strict=True))
        rows = np.asarray(index)
        return {
            "config": [self.config.name] * len(rows),
            "repeat": np.full(len(rows), self.repeat),
            "task": rows,
            "queue": self.plan["queue"].to_numpy()[rows],
            "priority": self.plan["priority"].to_numpy()[rows],
            "attempt": attempt,
            "worker": worker,
            "enqueue_s": self.plan["arrival_s"].to_numpy()[rows],
            "ready_s": ready,
            "claim_s": claim,
            "start_s": start,
            "end_s": end,
            "outcome": outcome,
        }

    # -- the queues ------------------------------------------------------------

    def _push(self, task: _Task) -> None:
        """Into its queue at the score taskq gives it now, and wake the waiting workers."""
        task.ready_s = now = self.env.now
        rank = 10 - task.priority
        key = (now + rank * self.config.aging_s,) if self.config.aging_s is not None else (rank, now)
        heapq.heappush(self.queues[task.queue], (key, self.seq, task))
        self.seq += 1
        if self.work_taken:
            woken, self.work, self.work_taken = self.work, self.env.event(), False
            woken.succeed()

    def _pop(self, queue: str, n: int) -> list[_Task]:
        heap = self.queues[queue]
        return [heapq.heappop(heap)[2] for _ in range(min(n, len(heap)))]

    def _arrive(self, _: object) -> None:
        """Push every task arriving now, then wait for the next arrival (callbacks on
        timeouts, not a process: half the events)."""
        tasks, i = self.tasks, self.next_arrival
        while i < len(tasks) and tasks[i].arrival_s <= self.env.now:
            self._push(tasks[i])
            i += 1
        self.next_arrival = i
        if i < len(tasks):
            self.env.timeout(tasks[i].arrival_s - self.env.now).callbacks.append(self._arrive)

    def _retry(self, task: _Task, delay_s: float) -> None:
        self.env.timeout(delay_s).callbacks.append(lambda _: self._push(task))

    # -- the worker ------------------------------------------------------------

    def _worker(self, worker: str, rng: random.Random) -> Generator[simpy.Event, Any, None]:
        concurrency = self.config.concurrency
        refill_at = max(1, concurrency // 4)
        cap = self.config.batch or MAX_BATCH
        slot: list[simpy.Event | None] = [None]
        running = [0]

        def freed(_: object) -> None:
            running[0] -= 1
            if slot[0] is not None and not slot[0].triggered:
                slot[0].succeed()

        while True:
            free = concurrency - running[0]
            if free <= 0 or (running[0] and free < refill_at):
                wait = slot[0] = self.env.event()
                yield wait
                continue
            work = self.work  # taken before the claim: a task arriving meanwhile wakes us
            self.work_taken = True
            if self.half_rtt_s:
                yield self.env.timeout(self.half_rtt_s)
            claim_s = self.env.now
            claimed: list[_Task] = []
            emptied = True
            for queue in claim_order(self.order, self.weights, rng):
                want = min(free - len(claimed), cap)
                if want <= 0:
                    emptied = False
                    break
                got = self._pop(queue, want)
                claimed += got
                emptied = emptied and len(got) < want
            if self.half_rtt_s:
                yield self.env.timeout(self.half_rtt_s)
            for task in claimed:
                running[0] += 1
                self._start(task, worker, claim_s, freed)
            if claimed and not emptied:
                continue
            yield work

    def _start(self, task: _Task, worker: str, claim_s: float, freed: Callable[[object], None]) -> None:
        task.attempt += 1
        start_s = self.env.now
        ready_s, attempt = task.ready_s, task.attempt
        end = self.env.timeout(task.service_s)

        def finish(_: object) -> None:
            failed = attempt <= task.fails
            outcome = "succeeded"
            if failed and attempt <= self.config.max_retries:
                outcome = "failed"
                self._retry(task, self.config.backoff.delay_s(attempt, self.backoff_rng))
            elif failed:
                outcome = "dead"
            self.attempts.append((task.index, attempt, worker, ready_s, claim_s, start_s, self.env.now, outcome))
            freed(None)
            if outcome != "failed":
                self.left -= 1
                if self.left == 0:
                    self.done.succeed()

        end.callbacks.append(finish)


def simulate(
    workload: Workload, configs: Config | Iterable[Config], repeats: int = 1, *, claim_rtt_s: float = 0.0
) -> pd.DataFrame:
    """Simulate ``workload`` under each configuration, ``repeats`` times (repeat r uses the
    plan ``workload.tasks(r)``, the same for every configuration), and return one frame of
    the lab's shape (``taskq.lab.FRAME_COLUMNS``) with ``attrs["source"] == "simulated"``.
    ``claim_rtt_s`` is the time one claim round takes (see the module's docstring)."""
    if not isinstance(workload, Workload):
        raise LabError(f"simulate: workload must be a taskq.lab.Workload, got {workload!r}")
    configs = check_configs(configs)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise LabError(f"simulate: repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(claim_rtt_s, bool) or not isinstance(claim_rtt_s, (int, float)) or not math.isfinite(claim_rtt_s):
        raise LabError(f"simulate: claim_rtt_s must be a finite number, got {claim_rtt_s!r}")
    if claim_rtt_s < 0:
        raise LabError(f"simulate: claim_rtt_s must be >= 0, got {claim_rtt_s}")
    for config in configs:
        unserved = [q for q in workload.queues if config.queue_weights is not None and q not in config.queue_weights]
        if unserved:
            raise LabError(f"config {config.name!r}: queue_weights leave out the workload's queues {unserved}")
    parts = []
    for repeat in range(repeats):
        plan = workload.tasks(repeat)
        parts += [pd.DataFrame(_Run(workload, config, plan, repeat, float(claim_rtt_s)).run()) for config in configs]
    columns = pd.concat(parts, ignore_index=True)
    attrs = frame_attrs("simulated", workload, configs, repeats)
    attrs["simulator"] = {"claim_rtt_s": float(claim_rtt_s)}
    return make_frame(columns.to_dict("series"), attrs)
