"""Stamps that benchmark tasks write about themselves, and the harness's reading of them.

Every benchmark task, in every system, calls :func:`task_done` as its last step with the
wall-clock time it started and the time it was meant to be sent (0 for drain tasks).
Per worker process the recorder keeps a count, the earliest start, the latest finish and
the latency samples, and flushes them to Redis in one MULTI/EXEC pipeline, from a
background thread every ``FLUSH_S`` or ``FLUSH_EVERY`` tasks (``BENCH_RECORD=direct``
flushes inside the task instead, for workers that run each task in a short-lived forked
child, such as RQ's default worker). The no-op path costs two ``time.time()`` calls and
a list append, the same in every system.

Keys (the harness FLUSHALLs between runs):

* ``bench:done``     tasks finished (INCRBY per flush; written last, so when it reaches N
  every sample and edge of those N is already there),
* ``bench:edges``    sorted set: ``first`` = earliest start (ZADD LT), ``last`` = latest finish (ZADD GT),
* ``bench:samples``  list of ``"intended started finished"`` for tasks that carry an intended time.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from dataclasses import dataclass

import redis

DONE_KEY = "bench:done"
EDGES_KEY = "bench:edges"
SAMPLES_KEY = "bench:samples"
URL_ENV = "BENCH_REDIS_URL"
MODE_ENV = "BENCH_RECORD"
FLUSH_S = 0.02
FLUSH_EVERY = 256


class Recorder:
    """One per worker process (re-created after a fork)."""

    def __init__(self, url: str, *, direct: bool = False) -> None:
        self.pid = os.getpid()
        self.direct = direct
        self._redis = redis.Redis.from_url(url)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._reset()
        if not direct:
            threading.Thread(target=self._flush_loop, name="bench-recorder", daemon=True).start()
            atexit.register(self.flush)

    def _reset(self) -> None:
        self._count = 0
        self._first = float("inf")
        self._last = 0.0
        self._samples: list[str] = []

    def done(self, started: float, intended: float) -> None:
        finished = time.time()
        with self._lock:
            self._count += 1
            self._first = min(self._first, started)
            self._last = max(self._last, finished)
            if intended:
                self._samples.append(f"{intended:.6f} {started:.6f} {finished:.6f}")
            full = self._count >= FLUSH_EVERY
        if self.direct:
            self.flush()
        elif full:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            count, first, last, samples = self._count, self._first, self._last, self._samples
            self._reset()
        if not count:
            return
        pipe = self._redis.pipeline(transaction=True)
        if samples:
            pipe.rpush(SAMPLES_KEY, *samples)
        pipe.zadd(EDGES_KEY, {"first": first}, lt=True)
        pipe.zadd(EDGES_KEY, {"last": last}, gt=True)
        pipe.incrby(DONE_KEY, count)
        pipe.execute()

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            try:
                self.flush()
            except redis.RedisError:
                time.sleep(0.1)  # the server is going away at the end of a run


_recorder: Recorder | None = None
_create_lock = threading.Lock()


def recorder() -> Recorder:
    """This process's recorder (a forked child gets its own)."""
    global _recorder
    current = _recorder
    if current is not None and current.pid == os.getpid():
        return current
    with _create_lock:
        if _recorder is None or _recorder.pid != os.getpid():
            _recorder = Recorder(os.environ[URL_ENV], direct=os.environ.get(MODE_ENV) == "direct")
        return _recorder


def task_done(started: float, intended: float = 0.0) -> None:
    """Record one finished benchmark task (call it last in the task body)."""
    recorder().done(started, intended)


# ---------------------------------------------------------------------------
# The harness side


@dataclass(frozen=True, slots=True)
class Sample:
    intended: float
    started: float
    finished: float

    @property
    def to_start_ms(self) -> float:
        return (self.started - self.intended) * 1000

    @property
    def to_finish_ms(self) -> float:
        return (self.finished - self.intended) * 1000


def done_count(client: redis.Redis) -> int:
    return int(client.get(DONE_KEY) or 0)


def progress(client: redis.Redis) -> tuple[int, tuple[float, float] | None]:
    """Tasks done so far and their (earliest start, latest finish), read atomically (each
    flush is a transaction, so the two always describe the same tasks)."""
    pipe = client.pipeline(transaction=True)
    pipe.get(DONE_KEY)
    pipe.zscore(EDGES_KEY, "first")
    pipe.zscore(EDGES_KEY, "last")
    done, first, last = pipe.execute()
    window = None if first is None or last is None else (float(first), float(last))
    return int(done or 0), window


def samples(client: redis.Redis) -> list[Sample]:
    raw: list[bytes] = client.lrange(SAMPLES_KEY, 0, -1)  # type: ignore[assignment]
    return [Sample(*map(float, item.split())) for item in raw]


def reset(client: redis.Redis) -> None:
    client.delete(DONE_KEY, EDGES_KEY, SAMPLES_KEY)
