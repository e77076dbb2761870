"""Property tests over random DAGs with random failures (hypothesis, driven through the
plans, so every attempt's fate is chosen), and kill -9 of real worker processes mid-run.

What must hold: every node runs at least once when its parents allow it, and never when they
do not; each node is released exactly once (one "queued" event of attempt 0) with its parents'
results in order; nothing is left waiting; every key ends with a TTL, and is gone after it.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from apps.procs import Workers, wait_until
from helpers import claim, complete, expire_leases, fail
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskq

Q = "default"
_prefixes = itertools.count()


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 8))
    nodes = []
    for j in range(n):
        parents = sorted(draw(st.sets(st.integers(0, j - 1), max_size=3))) if j else []
        nodes.append(
            {
                "parents": parents,
                "results": draw(st.booleans()),
                "on_error": draw(st.sampled_from(["fail", "pass"])),
                "fate": draw(st.lists(st.sampled_from(["ok", "ok", "retry", "expire", "dead"]), max_size=3)),
            }
        )
    return nodes


def _dag(spec: list[dict[str, Any]], node: Any) -> taskq.DAG:
    """The drawn DAG: node i is ``node.s(i=i)`` after its drawn parents."""
    dag = taskq.DAG()
    for i, n in enumerate(spec):
        dag.add(str(i), node.s(i=i), after=[str(p) for p in n["parents"]], results=n["results"], on_error=n["on_error"])
    return dag


def _queued_releases(tq: taskq.TaskQueue) -> Counter[str]:
    return Counter(
        e.task_id for e in tq.events(queues=[Q], since="0", follow=False) if e.type == "queued" and e.attempt == 0
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=dags())
def test_random_dags_with_random_failures(redis_url: str, rc: redis.Redis, spec: list[dict[str, Any]]) -> None:
    tq = taskq.TaskQueue(redis_url, prefix=f"prop{next(_prefixes)}")
    try:

        @tq.task(name="node", max_retries=2)
        def node(*args: Any, i: int) -> str:
            return f"r{i}"

        dag = _dag(spec, node)
        wf = tq.submit(dag)
        order = [int(name) for name in dag.order()]  # wf.nodes follow the DAG's topological order
        ids = {order[k]: task_id for k, task_id in enumerate(wf.nodes)}
        index = {task_id: i for i, task_id in ids.items()}
        fates = {i: list(n["fate"]) for i, n in enumerate(spec)}
        claims: Counter[int] = Counter()
        first_args: dict[int, list[Any]] = {}
        for _ in range(500):
            got = claim(tq, Q, n=20)
            if not got:
                if tq.stats(Q).pending == 0:
                    break
                time.sleep(0.002)  # a retry due in 0 ms, or a lease to reap
                continue
            for t in got:
                i = index[t.id]
                claims[i] += 1
                first_args.setdefault(i, t.args)
                action = fates[i].pop(0) if fates[i] else "ok"
                if action == "ok":
                    assert complete(tq, t, f"r{i}") == 1
                elif action == "retry":
                    fail(tq, t, retry_delay_ms=0)
                elif action == "dead":
                    fail(tq, t, -1)
                else:
                    expire_leases(tq, rc, Q, [t.id])

        info = tq.workflow(wf.id)
        settled = {index[n.id]: n.settled for n in info.nodes}
        assert None not in settled.values(), f"left unsettled: {settled}"
        assert info.state == ("succeeded" if set(settled.values()) == {"succeeded"} else "failed")
        releases = _queued_releases(tq)
        for i, n in enumerate(spec):
            outcomes = [settled[p] for p in n["parents"]]
            allowed = n["on_error"] == "pass" or all(o == "succeeded" for o in outcomes)
            if not allowed:
                assert claims[i] == 0 and settled[i] == "cancelled", (i, n, outcomes)
                assert tq.get(ids[i]).error_type == "ParentFailed"
                assert releases[ids[i]] == 0
                continue
            assert claims[i] >= 1, (i, n, outcomes)  # each node runs at least once
            assert releases[ids[i]] == 1, (i, releases[ids[i]])  # released exactly once
            if n["results"]:  # the list of the parents' results, in order (empty for a root)
                lead = first_args[i][0]
                assert len(lead) == len(n["parents"])
                for p, got_p, o in zip(n["parents"], lead, outcomes, strict=True):
                    if o == "succeeded":
                        assert got_p == f"r{p}"
                    else:
                        assert got_p["task_id"] == ids[p] and got_p["error_type"]
            else:
                assert first_args[i] == []
        # retention: every key of this workflow and its tasks ends with a TTL
        for key in rc.scan_iter(match=f"{tq.prefix}:*"):
            if "{wf:" in key or ":t:" in key:
                assert rc.ttl(key) > 0, key
    finally:
        tq.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=dags(), steps=st.integers(0, 6), finish_running=st.booleans())
def test_cancelling_a_workflow_mid_run_releases_nothing_more(
    redis_url: str, spec: list[dict[str, Any]], steps: int, finish_running: bool
) -> None:
    tq = taskq.TaskQueue(redis_url, prefix=f"prop{next(_prefixes)}")
    try:

        @tq.task(name="node", max_retries=0)
        def node(*args: Any, i: int) -> str:
            return f"r{i}"

        dag = _dag(spec, node)
        wf = tq.submit(dag)
        for _ in range(steps):  # run a few steps first
            for t in claim(tq, Q, n=1):
                complete(tq, t, "ok")
        running = claim(tq, Q, n=2)  # these are running when the workflow is cancelled
        counts = tq.cancel_workflow(wf.id)
        assert counts["cancelling"] == len(running)
        assert claim(tq, Q, n=50) == []  # nothing was released, and nothing that waited is queued
        for t in running:
            if finish_running:
                complete(tq, t, "late")  # it ended anyway: still nothing is released
            else:
                expire_leases(tq, redis.Redis.from_url(redis_url, decode_responses=True), Q, [t.id])
        assert claim(tq, Q, n=50) == []
        info = tq.workflow(wf.id)
        assert all(n.settled for n in info.nodes), [(n.id, n.status) for n in info.nodes]
        assert info.state in ("cancelled", "succeeded")  # succeeded: every node had ended before
        assert not any(n.status in ("waiting", "queued", "scheduled", "running") for n in info.nodes)
    finally:
        tq.close()


# ---------------------------------------------------------------------------
# kill -9 of real worker processes while a workflow runs

APP = "tests.workflows.wfapp:tq"
LAYERS = (6, 1, 5, 1)  # map, reduce, map (fed the reduce), reduce: groups with callbacks in a chain


@pytest.fixture
def procs(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(redis_url, tmp_path)
    yield started
    started.cleanup()


def test_kill_9_mid_workflow_runs_every_node_and_each_callback_once(
    tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers
) -> None:
    options = ("--concurrency", "2", "--lease-s", "1", "--grace-s", "0.2")
    live = {p.pid: p for p in (procs.start(*options, app=APP) for _ in range(3))}
    step = taskq.signature
    n = itertools.count()
    wf = tq.submit(
        taskq.chain(
            taskq.group([step("wf.work", next(n), 150).set(result_ttl_s=2) for _ in range(LAYERS[0])],
                        callback=step("wf.join", next(n)).set(result_ttl_s=2)),
            taskq.group([step("wf.work", next(n), 150).set(result_ttl_s=2) for _ in range(LAYERS[2])],
                        callback=step("wf.join", next(n)).set(result_ttl_s=2)),
        )
    )  # fmt: skip
    killed: set[int] = set()
    deadline = time.monotonic() + 30
    while len(killed) < 3 and tq.workflow(wf.id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.25)
        busy = sorted(w.pid for w in tq.workers() if w.current and w.pid in live)
        if busy:
            victim = live.pop(busy[0])
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed.add(victim.pid)
            fresh = procs.start(*options, app=APP, wait_ready=False)
            live[fresh.pid] = fresh
    wait_until(lambda: tq.workflow(wf.id).state != "running", 60, "the workflow to end after the kills")
    info = tq.workflow(wf.id)
    assert info.state == "succeeded", info.counts
    runs: dict[str, list[int]] = {}
    for entry in rc.lrange("ran", 0, -1):
        tag, pid = str(entry).split(":")
        runs.setdefault(tag, []).append(int(pid))
    assert sorted(runs, key=int) == [str(i) for i in range(sum(LAYERS))]  # every node ran at least once
    unexplained = {t: pids for t, pids in runs.items() if not set(pids[:-1]) <= killed}
    assert unexplained == {}, f"a run repeated without a kill: {unexplained} (killed {killed})"
    releases = _queued_releases(tq)
    assert all(releases[node] == 1 for node in wf.nodes), releases  # each callback released once
    final = tq.get(wf.sinks[0]).result
    assert final["n"] == sum(LAYERS) - 1 and len(final["inputs"]) == LAYERS[2]
    print(f"\nworkflow kill -9: {json.dumps({'kills': len(killed), 'runs': sum(map(len, runs.values()))})}")

    # retention: the records (2 s) and then the workflow's keys expire; nothing is left
    def all_expired() -> bool:
        return not list(rc.scan_iter(match="taskq:{wf:*")) and not list(rc.scan_iter(match="taskq:{default}:t:*"))

    wait_until(all_expired, 15, "the workflow's keys and records to expire")


def test_kill_9_during_a_random_dag_with_failures(tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers) -> None:
    rng = random.Random(19)
    options = ("--concurrency", "3", "--lease-s", "1", "--grace-s", "0.2")
    live = {p.pid: p for p in (procs.start(*options, app=APP) for _ in range(3))}
    n_nodes = 16
    parents = {j: sorted(rng.sample(range(j), k=min(j, rng.randint(0, 3)))) for j in range(n_nodes)}
    fails = {j for j in range(n_nodes) if rng.random() < 0.3}
    dag = taskq.DAG()
    for j in range(n_nodes):
        sig = taskq.signature("wf.node", j, rng.randint(50, 200), j in fails)
        dag.add(str(j), sig, after=[str(p) for p in parents[j]], results=bool(parents[j]))
    wf = tq.submit(dag)
    killed: set[int] = set()
    deadline = time.monotonic() + 30
    while len(killed) < 3 and tq.workflow(wf.id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.3)
        busy = sorted(w.pid for w in tq.workers() if w.current and w.pid in live)
        if busy:
            victim = live.pop(rng.choice(busy))
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed.add(victim.pid)
            fresh = procs.start(*options, app=APP, wait_ready=False)
            live[fresh.pid] = fresh
    wait_until(lambda: tq.workflow(wf.id).state != "running", 60, "the DAG to end after the kills")
    assert tq.workflow(wf.id).state == "succeeded"
    runs: dict[int, list[int]] = {}
    for entry in rc.lrange("ran", 0, -1):
        tag, pid = str(entry).split(":")
        runs.setdefault(int(tag), []).append(int(pid))
    assert sorted(runs) == list(range(n_nodes))  # every node ran at least once
    releases = _queued_releases(tq)
    assert all(releases[node] == 1 for node in wf.nodes), releases  # each released exactly once
    fed = {int(k): json.loads(v) for k, v in rc.hgetall("fed").items()}
    for j in range(n_nodes):  # each got its parents' results, in order
        assert fed.get(j) == (parents[j] or None), (j, fed.get(j), parents[j])
    print(f"\nrandom DAG kill -9: kills={len(killed)} failing-first={len(fails)} runs={sum(map(len, runs.values()))}")
