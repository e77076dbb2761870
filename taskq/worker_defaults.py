"""The worker's defaults that depend on the process rather than on Redis: how many tasks run
at once when no ``concurrency`` is given, and which event loop ``taskq worker`` runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from taskq.errors import InvalidOption
from taskq.registry import TaskDef

#: Default concurrency when every registered task is ``async def``: an awaiting task costs a
#: coroutine, not a thread, and tasks that mostly wait on I/O need many in flight to keep one
#: core busy (the I/O-task drain in benchmarks/README.md rises about 1.5x from 10 to 100 and
#: flattens after).
DEFAULT_ASYNC_CONCURRENCY = 100
#: Default concurrency when any registered task is a plain function: each running one holds a
#: thread of the pool (``threads`` defaults to the concurrency), and ten is a thread pool's
#: usual size, not a hundred threads per process.
DEFAULT_SYNC_CONCURRENCY = 10


def default_concurrency(definitions: Iterable[TaskDef]) -> int:
    """The concurrency a worker gets when none is given: :data:`DEFAULT_ASYNC_CONCURRENCY`
    if every task registered is ``async def`` (and there is at least one), else
    :data:`DEFAULT_SYNC_CONCURRENCY`."""
    kinds = [d.is_async for d in definitions]
    return DEFAULT_ASYNC_CONCURRENCY if kinds and all(kinds) else DEFAULT_SYNC_CONCURRENCY


#: Event loops :func:`run_worker` can run on: ``auto`` is uvloop when it is installed
#: (``pip install 'taskq[speed]'``), else asyncio's own.
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def loop_factory(event_loop: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop a worker process runs on (None: asyncio's default loop).

    uvloop (libuv) cuts the loop's own cost per task (socket writes, callbacks, timers),
    which a worker running many short I/O tasks spends most of its time in; asyncio's loop
    stays the fallback, and the choice is the worker command's alone: nothing is changed by
    importing taskq, and no global event loop policy is set."""
    if event_loop not in EVENT_LOOPS:
        raise InvalidOption(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, got {event_loop!r}")
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            raise InvalidOption("event_loop='uvloop' needs uvloop: pip install 'taskq[speed]'") from None
        return None
    return uvloop.new_event_loop
