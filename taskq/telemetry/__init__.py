"""Live telemetry: the one layer the CLI, the widgets and the API read.

What the scripts keep per queue (key names in :mod:`taskq.keys`, all with the ``{queue}``
hash tag; the Lua side is ``lua/lib/common.lua``, "Telemetry"), every write aggregated per
script call, not per task:

* **Counters** (``stats``): lifetime totals per outcome: enqueued, started, succeeded,
  failed, retried, dead, cancelled, requeued, released, redriven, purged.
* **Latency histograms** (``hist:wait``, ``hist:run``, ``hist:e2e``): queue wait (ready →
  claimed), run (claimed → finished, failed attempts included) and end to end (enqueued →
  succeeded), in log-spaced buckets: bucket 0 holds values under 1 ms, bucket ``b >= 1``
  holds ``[1.1^(b-1), 1.1^b)`` ms. Each is a string of 48-bit counters (BITFIELD), cheap
  to increment and read whole. A percentile (nearest rank) is read off as its bucket's
  geometric midpoint ``1.1^(b - 1/2)``, so it is within :data:`RELATIVE_ERROR` (4.9 %) of
  the true value, plus or minus the 1 ms resolution of the timestamps the scripts
  subtract (under about 20 ms the millisecond dominates). Bucket 0 reads as 0.5 ms.
* **Window checkpoints** (``ckpt:1s``, ``ckpt:10s``): before its first write in a new
  second, a script copies the cumulative counters and histograms into a checkpoint; the
  first one of every 10-second period also goes into the coarse set. A window of W
  seconds is "the checkpoint of this second minus the one W seconds before", as
  Prometheus does with counters, so a window costs two reads, not one per slot. Windows
  cover whole seconds up to the start of the current one: exactly W seconds up to 60 s,
  within 10 s of W up to 900 s. So they change once a second, and the first snapshot in
  each second computes them for every reader after it (``windows`` cache). Memory stays
  bounded: at most 75 fine and 96 coarse checkpoints per queue, each about the size of
  the histograms (a few hundred bytes to 5 kB).
* **Depth per priority** (``depth``): how many queued tasks each priority has, kept by every
  script that moves tasks in or out of ``queued``. Aging queues mix priorities within one
  score range, so counting score ranges (exact for strict queues only) would not do; the
  counters are exact for both as long as only the scripts touch ``queued``.
* **Events** (``events``): a capped stream of task transitions. One stream entry holds the
  events of one type from one script call (up to 100), as space-separated lists, so a
  claim of 500 tasks costs 5 XADDs, not 500. The cap is about ``events_maxlen`` events.
  With a sample rate N, the high-volume types (enqueued, scheduled, queued, started,
  succeeded) are kept for about 1 task in N (the same tasks for every type); failures,
  retries, deaths, cancellations, releases, requeues, re-drives and purges are always kept.

The package, by concern (no I/O anywhere: the clients drive it):

* :mod:`~taskq.telemetry.histogram`: bucket arithmetic and the one percentile definition;
* :mod:`~taskq.telemetry.snapshot`: the typed model (:class:`Snapshot` …) and the decoding
  of snapshot script replies and worker registrations;
* :mod:`~taskq.telemetry.events`: :class:`Event` and the sans-IO :class:`EventReader`;
* :mod:`~taskq.telemetry.prometheus`: the Prometheus text exposition;
* :mod:`~taskq.telemetry.logs`: the worker log formatters.

Every name below is re-exported here, so ``from taskq.telemetry import X`` works for all.
"""

from taskq.telemetry.events import (
    Event,
    EventReader,
    decode_event_entry,
)
from taskq.telemetry.histogram import (
    BUCKET_BASE,
    LATENCY_METRICS,
    MAX_BUCKET,
    PERCENTILES,
    RELATIVE_ERROR,
    bucket_bounds_ms,
    bucket_of,
    bucket_value_ms,
    nearest_rank_ms,
)
from taskq.telemetry.logs import (
    TASK_LOG_FIELDS,
    JsonLogFormatter,
    log_formatter,
)
from taskq.telemetry.merge import merge_queue_snapshots
from taskq.telemetry.prometheus import (
    PrometheusWriter,
    prometheus_text,
)
from taskq.telemetry.snapshot import (
    COUNTERS,
    DEFAULT_WINDOWS_S,
    MAX_WINDOW_S,
    Latency,
    QueueSnapshot,
    RunningTask,
    Snapshot,
    SnapshotHint,
    WindowStats,
    WorkerHealth,
    WorkerSnapshot,
    check_windows,
    decode_queue_snapshot,
    decode_worker,
    to_plain,
    worker_health,
)

__all__ = [
    "BUCKET_BASE",
    "COUNTERS",
    "DEFAULT_WINDOWS_S",
    "LATENCY_METRICS",
    "MAX_BUCKET",
    "MAX_WINDOW_S",
    "PERCENTILES",
    "RELATIVE_ERROR",
    "TASK_LOG_FIELDS",
    "Event",
    "EventReader",
    "JsonLogFormatter",
    "Latency",
    "PrometheusWriter",
    "QueueSnapshot",
    "RunningTask",
    "Snapshot",
    "SnapshotHint",
    "WindowStats",
    "WorkerHealth",
    "WorkerSnapshot",
    "bucket_bounds_ms",
    "bucket_of",
    "bucket_value_ms",
    "check_windows",
    "decode_event_entry",
    "decode_queue_snapshot",
    "decode_worker",
    "log_formatter",
    "merge_queue_snapshots",
    "nearest_rank_ms",
    "prometheus_text",
    "to_plain",
    "worker_health",
]
