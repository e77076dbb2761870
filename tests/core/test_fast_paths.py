"""The fast paths: group-committed async enqueues, the per-thread script connection
(hiredis-packed calls, :mod:`taskq.speedups`), sparse task records and the cheap task ids.
Each is checked against a real redis-server, including password, unix-socket and
non-zero-db setups. Every test runs twice: with the speedups on and switched off
(``TASKQ_SPEEDUPS=0``), so the plain path keeps the same behaviour."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

import taskq
from taskq import speedups
from taskq.backoff import Backoff
from taskq.server import EmbeddedServer, free_port
from taskq.task import new_task_id
from tests.helpers import claim_one, wait_until

# -- helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True, params=["on", "off"])
def speedups_switch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs each test with the speedups on and off (set before any client is made)."""
    monkeypatch.setenv(speedups.ENV_SWITCH, "1" if request.param == "on" else "0")
    return str(request.param)


@pytest.fixture
async def aq(redis_url: str) -> AsyncIterator[taskq.AsyncTaskQueue]:
    async with taskq.AsyncTaskQueue(redis_url) as queue:
        _register_names(queue)
        yield queue


def _any_arguments(*args: object, **kwargs: object) -> None:
    return None


def _register_names(client: taskq.AsyncTaskQueue) -> None:
    """The names the async tests enqueue, registered locally: an enqueue by an unregistered
    name would first read the published registry (a round trip these tests do not expect)."""
    for name in ("t", "warm-up"):
        client.task(name=name)(_any_arguments)


def _named(url: str, name: str) -> str:
    """``url`` with a client name, so CLIENT LIST tells this client's connections apart."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


def _connections(rc: redis.Redis, name: str) -> list[dict[str, str]]:
    return [c for c in rc.client_list() if c.get("name") == name]


def _kill(rc: redis.Redis, name: str) -> int:
    """CLIENT KILL every connection named ``name``; returns how many there were."""
    conns = _connections(rc, name)
    for c in conns:
        rc.client_kill_filter(_id=c["id"])
    return len(conns)


def _queued(rc: redis.Redis, tq: taskq.TaskQueue | taskq.AsyncTaskQueue, queue: str = "default") -> list[str]:
    return list(rc.zrange(tq.ops.queue_keys(queue).queued, 0, -1))


def _enqueued_counter(tq: taskq.TaskQueue, queue: str = "default") -> int:
    return tq.snapshot([queue]).queue(queue).counters["enqueued"]


def _own_server(argv: list[str], workdir: Path, ping_kwargs: dict[str, object]) -> subprocess.Popen[bytes]:
    """Start a redis-server of our own (no persistence) and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary")
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no", *argv],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"redis-server exited: {(workdir / 'server.log').read_text()}")
        try:
            with redis.Redis(**ping_kwargs) as r:  # type: ignore[arg-type]
                return bool(r.ping())
        except (redis.ConnectionError, OSError):
            return False

    wait_until(up, what="redis-server to answer")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def password_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    argv = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", "pw"]
    proc = _own_server(argv, tmp_path_factory.mktemp("pw"), {"port": port, "password": "pw"})
    yield f"redis://:pw@127.0.0.1:{port}/0"
    _stop(proc)


@pytest.fixture(scope="module")
def unix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("sock")
    sock = workdir / "redis.sock"  # tmp paths stay well under the 107-byte socket path limit
    proc = _own_server(
        ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"], workdir, {"unix_socket_path": str(sock)}
    )
    yield f"unix://{sock}?db=0"
    _stop(proc)


def _exercise_sync(url: str) -> list[str]:
    """Enqueue on the script fast path from the main thread and from short threads; read
    every task back; returns the ids."""
    with taskq.TaskQueue(url) as tq:
        tq.redis.flushdb()  # the server is shared by the runs with the speedups on and off
        ids = [tq.enqueue("t", args=[i], force=True).id for i in range(3)]
        again = tq.enqueue("t", idempotency_key="once", force=True).id
        assert tq.enqueue("t", idempotency_key="once", force=True).id == again
        ids.append(again)
        errors: list[BaseException] = []

        def in_thread(i: int) -> None:
            try:
                ids.append(tq.enqueue("t", args=[100 + i], force=True).id)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [tq.get(t).id for t in ids] == ids
        assert claim_one(tq).id == ids[0]  # claim.lua reads the sparse records too
        assert set(tq.redis.zrange(tq.ops.queue_keys("default").queued, 0, -1)) == set(ids) - {ids[0]}
        return ids


async def _exercise_async(url: str) -> list[str]:
    async with taskq.AsyncTaskQueue(url) as aq:
        _register_names(aq)
        handles = await asyncio.gather(*(aq.enqueue("t", args=[i], idempotency_key=f"a{i % 5}") for i in range(20)))
        ids = sorted({h.id for h in handles})
        assert len(ids) == 5
        for task_id in ids:
            assert (await aq.get(task_id)).name == "t"
        return ids


# -- group-committed async enqueues ------------------------------------------------------


async def test_concurrent_enqueues_one_id_per_idempotency_key(aq: taskq.AsyncTaskQueue, rc: redis.Redis) -> None:
    """200 concurrent enqueues, 40 keys used 5 times each and 40 without a key, over two
    queues, started in waves so several sends are in flight while more callers queue up."""
    keys = [f"k{i % 40}" for i in range(200)]
    written: list[bool] = []

    async def one(i: int) -> tuple[str | None, str]:
        key = keys[i] if i < 160 else None
        queue = "default" if i % 2 else "other"
        handle = await aq.enqueue(
            "t", args=[i], queue=queue if key is None else "default", idempotency_key=key, force=True
        )
        # The caller returns only once its own task is written.
        # (read with the blocking client: 200 concurrent reads would exceed the async pool)
        written.append(bool(rc.exists(aq.ops.queue_keys(queue_of(handle.id)).task(handle.id))))
        return key, handle.id

    def queue_of(task_id: str) -> str:
        return task_id.rsplit(":", 1)[0]

    callers = []
    for i in range(200):
        callers.append(asyncio.create_task(one(i)))
        if i % 7 == 6:
            await asyncio.sleep(0)  # let senders start: later callers are batched behind them
    results = await asyncio.gather(*callers)
    assert written == [True] * 200
    by_key: dict[str, set[str]] = {}
    unkeyed: list[str] = []
    for key, task_id in results:
        if key is None:
            unkeyed.append(task_id)
        else:
            by_key.setdefault(key, set()).add(task_id)
    assert len(by_key) == 40 and all(len(ids) == 1 for ids in by_key.values())
    keyed_ids = {next(iter(ids)) for ids in by_key.values()}
    assert len(keyed_ids) == 40
    assert len(set(unkeyed)) == 40
    # Every task is written exactly once: in exactly one queue, counted once.
    default_q = set(_queued(rc, aq, "default"))
    other_q = set(_queued(rc, aq, "other"))
    assert default_q == keyed_ids | {t for t in unkeyed if t.startswith("default:")}
    assert other_q == {t for t in unkeyed if t.startswith("other:")}
    assert len(default_q) + len(other_q) == 80
    for key, ids in by_key.items():
        assert rc.get(aq.ops.queue_keys("default").idem_prefix + key) == next(iter(ids))
    with taskq.TaskQueue(aq.url) as tq:
        assert _enqueued_counter(tq, "default") + _enqueued_counter(tq, "other") == 80
    assert aq._unsent == [] and not aq._senders


async def test_caller_cancelled_before_sending_is_not_enqueued(aq: taskq.AsyncTaskQueue, rc: redis.Redis) -> None:
    await aq.enqueue("warm-up")  # the queue is known: enqueues are one script call each
    first = asyncio.create_task(aq.enqueue("t"))  # nothing else on its way: it sends its own task
    caller = asyncio.create_task(aq.enqueue("t", idempotency_key="never"))
    await asyncio.sleep(0)  # the caller has queued its task behind the first; the sender has not run yet
    assert aq._direct == 1
    assert [spec.idempotency_key for spec, _ in aq._unsent] == ["never"]
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await first
    after = await aq.enqueue("t", idempotency_key="later")  # the client goes on working
    wait_until(lambda: not aq._senders, what="senders to finish")
    assert rc.get(aq.ops.queue_keys("default").idem_prefix + "never") is None
    queued = _queued(rc, aq)
    assert len(queued) == 3 and after.id in queued
    assert sorted([(await aq.get(t)).name for t in queued]) == ["t", "t", "warm-up"]


async def test_caller_cancelled_after_sending_still_has_its_task_written(
    aq: taskq.AsyncTaskQueue, rc: redis.Redis
) -> None:
    """Once a sender has taken the caller's task, cancelling the caller no longer stops it:
    the task is written (the caller gets CancelledError, not the id), and the same
    idempotency key then finds it."""
    await aq.enqueue("warm-up")
    rc.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")  # holds the script call at the server
    try:
        first = asyncio.create_task(aq.enqueue("t"))  # sent by its caller, held at the server
        await asyncio.sleep(0)
        caller = asyncio.create_task(aq.enqueue("t", idempotency_key="sent"))  # queued behind it
        for _ in range(1000):
            await asyncio.sleep(0.001)
            if not aq._unsent and aq._senders:
                break
        assert not aq._unsent and aq._senders, "the sender never took the task"
        await asyncio.sleep(0.05)  # let the call reach the paused server
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
    finally:
        rc.execute_command("CLIENT", "UNPAUSE")
    for _ in range(1000):
        if not aq._senders:
            break
        await asyncio.sleep(0.01)
    assert not aq._senders
    await first
    task_id = rc.get(aq.ops.queue_keys("default").idem_prefix + "sent")
    assert task_id is not None and task_id in _queued(rc, aq)
    assert (await aq.enqueue("t", idempotency_key="sent")).id == task_id
    assert len(_queued(rc, aq)) == 3


async def test_failed_batch_fails_each_caller_and_the_client_recovers(
    aq: taskq.AsyncTaskQueue, rc: redis.Redis
) -> None:
    """A batch whose send fails hands the error to each of its callers; later enqueues work."""
    await aq.enqueue("warm-up")
    rc.config_set("maxmemory", 1)  # every write is refused (OOM) from now on
    try:
        results = await asyncio.gather(*(aq.enqueue("t", args=[i]) for i in range(10)), return_exceptions=True)
    finally:
        rc.config_set("maxmemory", 0)
    assert len(results) == 10 and all(isinstance(r, taskq.ServerFull) for r in results), results
    assert len(_queued(rc, aq)) == 1
    handles = await asyncio.gather(*(aq.enqueue("t", args=[i]) for i in range(10)))
    assert len({h.id for h in handles}) == 10 and len(_queued(rc, aq)) == 11


async def test_batch_across_queues_fails_only_the_callers_whose_queue_failed(
    aq: taskq.AsyncTaskQueue, rc: redis.Redis
) -> None:
    """Concurrent enqueues to two queues go out in one batch; when one queue's script call
    fails, only that queue's callers get the error: the others' tasks are written and they
    get their ids (never an error for a task that exists)."""
    await aq.enqueue("warm-up", queue="good")
    await aq.enqueue("warm-up", queue="bad")
    rc.delete(aq.ops.queue_keys("bad").queued)
    rc.set(aq.ops.queue_keys("bad").queued, "not a sorted set")  # enqueue.lua fails on WRONGTYPE
    results = await asyncio.gather(
        *(aq.enqueue("t", args=[i], queue="good" if i % 2 else "bad") for i in range(40)),
        return_exceptions=True,
    )
    good = [r for i, r in enumerate(results) if i % 2]
    bad = [r for i, r in enumerate(results) if not i % 2]
    assert all(isinstance(r, redis.exceptions.ResponseError) for r in bad), bad
    assert all(isinstance(r, taskq.AsyncTaskHandle) for r in good), good
    queued = set(_queued(rc, aq, "good"))
    assert {h.id for h in good} <= queued and len(queued) == 21


# -- the per-thread script connection ------------------------------------------------------


def test_thread_connections_go_back_to_the_pool(redis_url: str, rc: redis.Redis) -> None:
    name = "perfcheck-threads"
    with taskq.TaskQueue(_named(redis_url, name)) as tq:
        tq.enqueue("warm-up", force=True)
        pool = tq.redis.connection_pool
        errors: list[BaseException] = []

        def short_life(i: int) -> None:
            try:
                tq.enqueue("t", args=[i], force=True)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        for wave in range(10):  # 50 short threads, 5 at a time
            threads = [threading.Thread(target=short_life, args=(wave * 5 + j,)) for j in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert errors == []
        gc.collect()
        # Only the main thread still holds a connection; the threads' went back.
        wait_until(lambda: len(pool._in_use_connections) <= 1, what="thread connections to be released")
        open_conns = len(_connections(rc, name))
        assert 1 <= open_conns <= 6, open_conns  # at most one wave's worth (+ main), not 50
        assert len(_queued(rc, tq)) == 51


def test_held_connections_leave_room_in_a_bounded_pool(redis_url: str, rc: redis.Redis) -> None:
    """Ten long-lived threads, one call at a time, on a pool of 4 connections: threads may
    keep only half of the pool, the others' script calls take the ordinary path, and every
    call (script or plain) finds a connection."""
    with taskq.TaskQueue(redis_url + "?max_connections=4") as tq:
        tq.enqueue("warm-up", force=True)
        one_at_a_time = threading.Lock()
        all_enqueued = threading.Barrier(10, timeout=20)
        errors: list[BaseException] = []

        def long_lived(i: int) -> None:
            try:
                with one_at_a_time:
                    tq.enqueue("t", args=[i], force=True)
                all_enqueued.wait()  # every thread alive, each having made a script call
                with one_at_a_time:
                    assert tq.get(tq.enqueue("t", args=[i], force=True).id).args == [i]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                all_enqueued.abort()

        threads = [threading.Thread(target=long_lived, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(_queued(rc, tq)) == 21


def test_client_close_then_reuse(redis_url: str, rc: redis.Redis) -> None:
    name = "perfcheck-close"
    tq = taskq.TaskQueue(_named(redis_url, name))
    first = tq.enqueue("t", force=True).id
    tq.close()
    assert _connections(rc, name) == []
    second = tq.enqueue("t", force=True).id  # the held connection reconnects on next use
    assert set(_queued(rc, tq)) == {first, second}
    tq.close()


def _enqueue_checked(tq: taskq.TaskQueue, who: str, n: int) -> list[str]:
    """Enqueue ``n`` tasks, reading each back: a reply meant for another process shows."""
    ids = []
    for i in range(n):
        task_id = tq.enqueue(who, args=[i], force=True).id
        task = tq.get(task_id)
        assert (task.name, task.args) == (who, [i]), f"{who} got a reply not its own: {task}"
        ids.append(task_id)
    return ids


def test_forked_child_enqueues_with_the_parents_client(redis_url: str, rc: redis.Redis) -> None:
    """Parent and forked child enqueue at the same time with the client the parent made
    (and had used): the child must take its own connection, not share the parent's socket."""
    n = 300
    with taskq.TaskQueue(redis_url + "?socket_timeout=10") as tq:
        before = tq.enqueue("parent", args=[-1], force=True).id  # the parent holds its script connection now
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: must leave through os._exit whatever happens
            code = 1
            try:
                os.close(go_r)
                os.close(out_r)
                os.write(go_w, b"1")
                ids = _enqueue_checked(tq, "child", n)
                os.write(out_w, "\n".join(ids).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(go_w)
        os.close(out_w)
        try:
            assert os.read(go_r, 1) == b"1"
            parent_ids = _enqueue_checked(tq, "parent", n)
            with os.fdopen(out_r, "rb") as pipe:
                child_ids = pipe.read().decode().split("\n")
        finally:
            os.close(go_r)
            exit_code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        assert exit_code == 0
        assert len(child_ids) == n
        # The parent goes on working on its own connection after the child is gone.
        after = tq.enqueue("parent", args=["after"], force=True).id
        assert tq.get(after).args == ["after"]
        queued = set(_queued(rc, tq))
        assert queued == {before, after, *parent_ids, *child_ids} and len(queued) == 2 * n + 2


def test_the_switch_chooses_the_path(redis_url: str, speedups_switch: str) -> None:
    """On, the calling thread keeps a pool connection for its script calls; off, every call
    checks one out and hands it back (redis-py's ordinary path)."""
    with taskq.TaskQueue(redis_url) as tq:
        handle = tq.enqueue("t", args=["é☃", 1.5, None], kwargs={"k": "\r\n"}, priority=7, timeout_s=1.5, force=True)
        task = tq.get(handle.id)
        assert (task.args, task.kwargs, task.priority, task.timeout_s) == (["é☃", 1.5, None], {"k": "\r\n"}, 7, 1.5)
        held = len(tq.redis.connection_pool._in_use_connections)  # type: ignore[attr-defined]
        assert held == (1 if speedups_switch == "on" else 0)


# -- waiting for the wake-up after a short claim ---------------------------------------------


def test_worker_with_free_slots_wakes_for_a_task_enqueued_while_it_works(tq: taskq.TaskQueue) -> None:
    """A claim that got fewer tasks than asked leaves the worker waiting for the wake-up
    message (not polling; idle_poll_s is 30 s here): each new task must still start while
    the earlier ones keep their slots."""
    release = threading.Event()
    started: list[int] = []

    @tq.task
    def hold(n: int) -> int:
        started.append(n)
        release.wait(20)
        return n

    worker = tq.start_worker(concurrency=4, idle_poll_s=30)
    try:
        handles = []
        for n in range(3):
            handles.append(hold.enqueue(n))
            wait_until(lambda n=n: n in started, timeout_s=10, what=f"task {n} to start beside the others")
        assert sorted(started) == [0, 1, 2]
        release.set()
        assert [h.result(timeout_s=10) for h in handles] == [0, 1, 2]
    finally:
        release.set()
        worker.stop(grace_s=0)


# -- the sparse task record ---------------------------------------------------------------


def test_record_leaves_out_defaults_and_get_fills_them(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    task_id = tq.enqueue("plain", args=[1], force=True).id
    record = rc.hgetall(tq.ops.queue_keys("default").task(task_id))
    assert set(record) == {
        "name",
        "args",
        "priority",
        "attempts",
        "max_retries",
        "result_ttl_s",
        "enqueued_ms",
        "ready_ms",
        "status",
        "score",
    }
    task = tq.get(task_id)
    assert (task.id, task.queue, task.name, task.args, task.kwargs) == (task_id, "default", "plain", [1], {})
    assert (task.status, task.priority, task.attempts, task.max_retries) == (taskq.TaskStatus.QUEUED, 5, 0, 3)
    assert (task.timeout_s, task.due_ms, task.idempotency_key, task.worker, task.result) == (None,) * 5
    assert task.backoff == Backoff()
    claimed = claim_one(tq)
    assert (claimed.id, claimed.kwargs, claimed.timeout_s, claimed.backoff) == (task_id, {}, None, Backoff())
    assert tq._exec.run(tq.ops.get_many([task_id]))[0] == tq.get(task_id)


def test_record_keeps_what_differs_from_the_defaults(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    backoff = Backoff(base_s=2.0, cap_s=60.0, jitter=0.25, min_s=1.5)

    @tq.task(name="custom", queue="emails", backoff=backoff)
    def custom(k: str) -> None: ...

    handle = tq.enqueue(
        "custom",
        kwargs={"k": "v"},
        priority=9,
        delay_s=3600,
        timeout_s=2.5,
        max_retries=0,
        idempotency_key="idem-1",
        force=True,
    )
    record = rc.hgetall(tq.ops.queue_keys("emails").task(handle.id))
    assert "id" not in record and "queue" not in record
    assert {"kwargs", "timeout_ms", "due_ms", "idem", "retry_base_ms", "retry_jitter"} <= set(record)
    task = tq.get(handle.id)
    assert (task.queue, task.kwargs, task.priority, task.timeout_s, task.max_retries) == (
        "emails",
        {"k": "v"},
        9,
        2.5,
        0,
    )
    assert (task.status, task.idempotency_key, task.backoff) == (taskq.TaskStatus.SCHEDULED, "idem-1", backoff)
    assert task.due_ms is not None and task.due_ms > task.enqueued_ms


def test_from_hash_needs_an_id_for_a_sparse_record() -> None:
    raw = {"name": "t", "args": "[]", "priority": "5", "status": "queued", "enqueued_ms": "1"}
    assert taskq.Task.from_hash(raw, "q:00ff").queue == "q"
    with pytest.raises(ValueError, match="task id"):
        taskq.Task.from_hash(raw)


# -- lost connections ------------------------------------------------------------------------


def test_killed_connection_is_recovered_without_duplicates(redis_url: str, rc: redis.Redis) -> None:
    name = "perfcheck-kill"
    with taskq.TaskQueue(_named(redis_url, name)) as tq:
        first = tq.enqueue("t", idempotency_key="k1", force=True).id
        for round_ in range(3):
            assert _kill(rc, name) >= 1
            # The held connection is dead: the call falls back to redis-py, which reconnects.
            assert tq.enqueue("t", idempotency_key="k1", force=True).id == first
            assert _kill(rc, name) >= 1
            tq.enqueue("t", args=[round_], force=True)
            assert _kill(rc, name) >= 1
            assert tq.get(first).name == "t"  # a plain command after a kill works too
        assert len(_queued(rc, tq)) == 4
        assert _enqueued_counter(tq) == 4


async def test_killed_connection_async(redis_url: str, rc: redis.Redis) -> None:
    name = "perfcheck-kill-async"
    async with taskq.AsyncTaskQueue(_named(redis_url, name)) as aq:
        _register_names(aq)
        first = (await aq.enqueue("t", idempotency_key="k1")).id
        assert _kill(rc, name) >= 1
        assert (await aq.enqueue("t", idempotency_key="k1")).id == first
        assert _kill(rc, name) >= 1
        await asyncio.gather(*(aq.enqueue("t", args=[i]) for i in range(5)))
    assert len(_queued(rc, aq)) == 6


def test_server_down_is_a_typed_error(redis_server: EmbeddedServer) -> None:
    with taskq.TaskQueue(f"redis://127.0.0.1:{free_port()}/0") as tq, pytest.raises(taskq.ServerUnavailable):
        tq.enqueue("t", force=True)


# -- connection setups --------------------------------------------------------------------------


def test_password_protected_server(password_url: str) -> None:
    ids = _exercise_sync(password_url)
    assert len(set(ids)) == len(ids) == 8
    assert len(asyncio.run(_exercise_async(password_url))) == 5
    with redis.Redis.from_url(password_url) as r:
        r.flushall()


def test_wrong_password_is_a_typed_error(password_url: str) -> None:
    with taskq.TaskQueue(password_url.replace(":pw@", ":wrong@")) as tq, pytest.raises(taskq.AccessDenied):
        tq.enqueue("t", force=True)


def test_unix_socket_url(unix_url: str) -> None:
    ids = _exercise_sync(unix_url)
    assert len(set(ids)) == len(ids) == 8
    assert len(asyncio.run(_exercise_async(unix_url))) == 5
    with redis.Redis.from_url(unix_url) as r:
        r.flushall()


def test_non_zero_db_keeps_keys_in_that_db(redis_server: EmbeddedServer, redis_url: str) -> None:
    url3 = redis_url.rsplit("/", 1)[0] + "/3"
    name = "perfcheck-db3"
    db0 = redis.Redis.from_url(redis_url, decode_responses=True)
    db3 = redis.Redis.from_url(url3, decode_responses=True)
    try:
        db3.flushdb()
        with taskq.TaskQueue(_named(url3, name)) as tq:
            ids = [tq.enqueue("t", args=[i], force=True).id for i in range(3)]
            _kill(db0, name)  # a reconnection must select db 3 again
            ids.append(tq.enqueue("t", args=[3], force=True).id)
            assert [tq.get(t).args for t in ids] == [[0], [1], [2], [3]]
        asyncio.run(_exercise_async(url3))
        assert db0.dbsize() == 0
        queued_key = taskq.TaskQueue(url3).ops.queue_keys("default").queued
        assert set(ids) <= set(db3.zrange(queued_key, 0, -1))
        assert db3.dbsize() > 0
    finally:
        db3.flushdb()
        db0.close()
        db3.close()


# -- task ids ------------------------------------------------------------------------------------


def _ids_in_child(path: Path, n: int) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            path.write_text("\n".join(new_task_id("q") for _ in range(n)))
            code = 0
        finally:
            os._exit(code)
    return pid


def test_ids_from_two_processes_never_collide_and_are_time_ordered(tmp_path: Path) -> None:
    n = 50_000
    new_task_id("q")  # the parent's generator has state both children would inherit
    pids = [_ids_in_child(tmp_path / f"ids{i}", n) for i in range(2)]
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    a, b = ((tmp_path / f"ids{i}").read_text().split("\n") for i in range(2))
    assert len(set(a)) == len(a) == n and len(set(b)) == len(b) == n
    assert not set(a) & set(b)
    for ids in (a, b):
        assert all(x < y for x, y in itertools.pairwise(ids)), "ids are not time-ordered"
        assert all(len(x) == len("q:") + 26 for x in ids)
    # Each forked child draws its own random digits (reseeded at fork), not the parent's.
    assert [x[18:26] for x in a[:100]] != [x[18:26] for x in b[:100]]
