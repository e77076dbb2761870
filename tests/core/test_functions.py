"""Script calls as Redis Functions (taskq.functions): FCALL where the server has it, healed after
a FUNCTION FLUSH without running anything twice, EVALSHA with TASKQ_FUNCTIONS=0 or where the
server refuses FUNCTION, two versions' libraries side by side, and no state carried from one
function call to the next (a library's top-level locals outlive a call; EVALSHA's do not)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from helpers import claim, complete, fail, wait_until

import taskq
from taskq import functions, ops, scripts

LIB = scripts.library().name


def calls(rc: redis.Redis, command: str) -> int:
    return int(rc.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def libraries(rc: redis.Redis) -> list[str]:
    """The names of the libraries loaded (FUNCTION LIST: one flat name, value list each)."""
    found = []
    for lib in rc.function_list():
        fields = dict(lib) if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2], strict=True))
        name = fields.get("library_name", fields.get(b"library_name"))
        found.append(name.decode() if isinstance(name, bytes) else str(name))
    return sorted(found)


@pytest.fixture
def fresh(rc: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    """The test server with no functions and no scripts loaded; functions left on (the default)."""
    monkeypatch.delenv(functions.ENV_SWITCH, raising=False)
    rc.function_flush()
    rc.script_flush()
    rc.config_resetstat()
    return rc


def round_trip(tq: taskq.TaskQueue) -> None:
    """One of each hot script call: a single enqueue, a batch, claim, complete, fail (5 calls)."""
    tq.enqueue("t", [0], force=True)
    tq.enqueue_many([{"name": "t", "args": [i], "force": True} for i in (1, 2)])
    first, second = claim(tq, n=2)
    assert complete(tq, first, "ok") == 1
    assert fail(tq, second)[0] == "dead"


@pytest.mark.parametrize("speedups", ["1", "0"])
def test_script_calls_go_as_fcall(
    fresh: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch, speedups: str
) -> None:
    monkeypatch.setenv("TASKQ_SPEEDUPS", speedups)  # the direct send and redis-py's own path
    with taskq.TaskQueue(redis_url) as tq:
        tq.enqueue("t", force=True)  # loads the library
        assert libraries(fresh) == [LIB]
        fresh.config_resetstat()
        round_trip(tq)
        assert calls(fresh, "fcall") == 5
        assert calls(fresh, "evalsha") == 0 and calls(fresh, "script|load") == 0


def test_a_function_flush_is_healed_and_nothing_runs_twice(fresh: redis.Redis, redis_url: str) -> None:
    with taskq.TaskQueue(redis_url) as tq:
        tq.enqueue("t", force=True)
        fresh.function_flush()
        handle = tq.enqueue("t", force=True)  # the direct send
        assert tq.get(handle.id).status is taskq.TaskStatus.QUEUED
        fresh.function_flush()
        handles = tq.enqueue_many([{"name": "t", "force": True, "args": [i]} for i in range(5)])  # 5 not found
        assert [tq.get(h.id).args for h in handles] == [[i] for i in range(5)]
        tasks = claim(tq, n=3)
        fresh.function_flush()
        assert [complete(tq, t, i) for i, t in enumerate(tasks)] == [1, 1, 1]
        fresh.function_flush()
        assert tq.cancel(handles[-1].id) == "cancelled"
        stats = tq.stats()
        assert (stats.queued, stats.counters["enqueued"], stats.counters["succeeded"]) == (3, 7, 3)
        assert libraries(fresh) == [LIB]
        assert calls(fresh, "evalsha") == 0


async def test_asyncio_client_uses_fcall_and_heals(fresh: redis.Redis, redis_url: str) -> None:
    async with taskq.AsyncTaskQueue(redis_url) as aq:
        await aq.enqueue("t", force=True)
        fresh.function_flush()
        fresh.config_resetstat()
        handles = await aq.enqueue_many([{"name": "t", "force": True}] * 3)
        await aq.enqueue("t", force=True)
        fresh.function_flush()
        assert await aq.cancel(handles[0].id) == "cancelled"
        assert (await aq.stats()).queued == 4
        assert calls(fresh, "fcall") >= 4 and calls(fresh, "evalsha") == 0


def test_the_switch_keeps_evalsha(fresh: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(functions.ENV_SWITCH, "0")
    with taskq.TaskQueue(redis_url) as tq:
        round_trip(tq)
        fresh.script_flush()  # NOSCRIPT is healed as ever
        tq.enqueue_many([{"name": "t", "force": True}] * 2)
        assert tq.stats().queued == 3
    assert calls(fresh, "fcall") == 0 and calls(fresh, "evalsha") >= 5
    assert libraries(fresh) == []


def test_a_server_that_refuses_function_gets_evalsha(
    fresh: redis.Redis, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL without FUNCTION (as a Redis < 7 has none): EVALSHA, decided once, logged at DEBUG."""
    fresh.execute_command("ACL", "SETUSER", "nofn", "on", ">pw", "~*", "&*", "+@all", "-function", "-fcall")
    try:
        url = redis_server.url.replace("redis://", "redis://nofn:pw@", 1)
        with caplog.at_level(logging.DEBUG, logger="taskq.functions"), taskq.TaskQueue(url) as tq:
            round_trip(tq)
            fresh.script_flush()
            tq.enqueue("t", force=True)
        assert calls(fresh, "fcall") == 0 and calls(fresh, "evalsha") >= 5
        said = [r.getMessage() for r in caplog.records if r.name == "taskq.functions"]
        assert len(said) == 1 and "EVALSHA" in said[0] and "NoPermissionError" in said[0], said
    finally:
        fresh.execute_command("ACL", "DELUSER", "nofn")


def test_fakeredis_falls_back_to_evalsha(
    fake_server: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """fakeredis (2.41) loads the library, but its functions raise on a global it lacks
    (``struct``, which snapshot.lua tests for): the library's check fails, and EVALSHA it is."""
    monkeypatch.delenv(functions.ENV_SWITCH, raising=False)
    with redis.Redis.from_url(fake_server.url) as raw:
        raw.flushall()
        raw.function_flush()
        with caplog.at_level(logging.DEBUG, logger="taskq.functions"), taskq.TaskQueue(fake_server.url) as tq:
            round_trip(tq)
            assert tq.snapshot().queues[0].dead == 1  # runs snapshot.lua, which needs the fallback
    said = [r.getMessage() for r in caplog.records if r.name == "taskq.functions"]
    assert len(said) == 1 and "struct" in said[0], said


@contextlib.contextmanager
def other_version(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Inside, this process's scripts are those of another taskq version (one comment more in
    lib/common.lua: another library hash, the same behaviour); yields its library's name."""
    read = scripts._read
    clear = (scripts.load_script.cache_clear, scripts.library.cache_clear, ops._enqueue_head.cache_clear)
    with monkeypatch.context() as patch:
        patch.setattr(scripts, "_read", lambda path: read(path) + ("\n-- v2\n" if path == "lib/common.lua" else ""))
        for c in clear:
            c()
        try:
            yield scripts.library().name
        finally:
            patch.undo()
            for c in clear:
                c()


def test_two_versions_share_a_server(fresh: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with taskq.TaskQueue(redis_url) as tq:
        round_trip(tq)
    with other_version(monkeypatch) as v2, taskq.TaskQueue(redis_url) as tq2:
        fresh.config_resetstat()
        round_trip(tq2)
        assert calls(fresh, "fcall") == 5 + 1 and calls(fresh, "evalsha") == 0  # and the library's check
    assert v2 != LIB and libraries(fresh) == sorted([LIB, v2])
    with taskq.TaskQueue(redis_url) as tq:  # the first version's library is still there, unreplaced
        fresh.config_resetstat()
        tq.enqueue("t", force=True)
        assert calls(fresh, "fcall") == 1 + 1 and calls(fresh, "function|load") == 1  # "already exists", checked
        assert tq.stats().counters["enqueued"] == 7


def _two_clients_two_workflows(url: str) -> dict[str, Any]:
    """Two clients with different telemetry settings, each driving a chain on its own queue,
    their calls interleaved: the same functions serve both in turn. Returns what they left."""
    noisy = taskq.TaskQueue(url, events_sample=1, telemetry=True)
    quiet = taskq.TaskQueue(url, events_maxlen=0, telemetry=False)
    try:
        flows = {}
        for name, tq in (("noisy", noisy), ("quiet", quiet)):

            @tq.task(name="add", queue=name, max_retries=0)
            def add(a: int, b: int = 0) -> int:
                return a + b

            flows[name] = tq.submit(taskq.chain(add.s(1, 2), add.s(10), add.s(100)))
        for _ in range(3):
            for name, tq in (("noisy", noisy), ("quiet", quiet)):
                (task,) = claim(tq, name)
                assert complete(tq, task, sum(task.args)) == 1
        left: dict[str, Any] = {}
        for name, tq in (("noisy", noisy), ("quiet", quiet)):
            stats = tq.stats(name)
            info = tq.workflow(flows[name].id)
            left[name] = {
                "result": flows[name].result(timeout_s=5),
                "state": info.state,
                "nodes": [n.status for n in info.nodes],
                "places": (stats.queued, stats.scheduled, stats.running, stats.dead),
                "counters": {k: v for k, v in stats.counters.items() if v},
                "events": sorted(e.type for e in tq.events(name, since="0", follow=False)),
            }
        return left
    finally:
        noisy.close()
        quiet.close()


def test_no_state_carries_over_between_calls(
    fresh: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call of a function starts as fresh as an EVALSHA: the same calls leave the same
    state both ways (a table of lib/workflow.lua that outlived its call once re-committed the
    previous call's workflow contexts: tasks queued twice, counters doubled)."""
    with_functions = _two_clients_two_workflows(redis_url)
    assert calls(fresh, "fcall") > 0 and calls(fresh, "evalsha") == 0
    fresh.flushall()
    monkeypatch.setenv(functions.ENV_SWITCH, "0")
    with_evalsha = _two_clients_two_workflows(redis_url)
    assert with_functions == with_evalsha
    assert with_functions["noisy"]["result"] == with_functions["quiet"]["result"] == 113
    assert with_functions["noisy"]["places"] == (0, 0, 0, 0)


def test_a_full_redis_can_still_be_looked_at_and_emptied(fresh: redis.Redis, redis_url: str) -> None:
    """Redis refuses a function that may write when at maxmemory (an EVALSHA only at its first
    write of a command that grows memory): the reading scripts are flagged no-writes and those
    that free memory or show what fills it allow-oom, so they run there, as FCALL, as their
    EVALSHA did; an enqueue is still refused whole."""
    with taskq.TaskQueue(redis_url) as tq:

        @tq.task(max_retries=0)
        def doomed() -> None:
            raise RuntimeError("dead on arrival")

        for _ in range(2):
            doomed.enqueue()
        with tq.start_worker(queues=["default"], concurrency=1):
            wait_until(lambda: tq.dead_letters("default").count() == 2, what="two dead tasks")
        handle = tq.enqueue("t", force=True)
        later = tq.enqueue("t", force=True, delay_s=600)
        fresh.config_resetstat()
        fresh.config_set("maxmemory", 1)
        try:
            assert [t.id for t in tq.list_tasks("default", "queued").tasks] == [handle.id]
            assert tq.inspect().queued_total == 1
            assert tq.snapshot(queues=["default"]).queue("default").dead == 2
            assert tq.cancel(later.id) == "cancelled"
            assert tq.dead_letters("default").purge(all=True) == 2
            with pytest.raises(taskq.ServerFull):
                tq.enqueue("t", force=True)
        finally:
            fresh.config_set("maxmemory", 0)
        assert calls(fresh, "fcall") >= 5 and calls(fresh, "evalsha") == 0


def test_each_function_is_its_script() -> None:
    """One source of truth: a function's body is its script's text after the includes, the
    includes are at the library's top, and nothing but comments comes before them."""
    lib = scripts.library()
    for name in scripts.SCRIPT_NAMES:
        raw = scripts._read(f"{name}.lua")
        last = raw.rfind("\n--!include ")
        head, body = (raw[:last], raw[raw.index("\n", last + 1) :]) if last >= 0 else ("", raw)
        header = re.sub(r"--\[\[.*?\]\]|--[^\n]*", "", head, flags=re.DOTALL)
        assert header.strip() == "", name  # a script's code all goes into its function
        assert scripts.load_script(name).source.endswith(body)
        assert f"function_name='{lib.functions[name]}'," in lib.source
        assert f"callback=function(KEYS, ARGV)\n{body}\nend}}" in lib.source
        for include in re.findall(r"^--!include (\S+)$", raw, flags=re.MULTILINE):
            assert scripts._read(include) in lib.source.partition("redis.register_function")[0]
