"""Least-privilege Redis ACL users (docs/RELIABILITY.md, "ACL users"): the two ``ACL SETUSER``
lines of that page, read from it, are enough for producers and a worker; a user without
them gets a typed error (one line from the CLI), not a traceback."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.procs import REPO, wait_until
from reliability.servers import redis_server
from reliability.test_startup_and_secrets import cli

import taskq
from taskq.worker import BackgroundWorker

ADMIN = "admin-pw-0d2e"
DOC = REPO / "docs" / "RELIABILITY.md"


def documented_rules() -> dict[str, list[str]]:
    """User name -> its ACL SETUSER arguments, as the page shows them."""
    rules = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("ACL SETUSER "):
            args = shlex.split(line)[2:]
            rules[args[0]] = args[1:]
    assert set(rules) == {"taskq-producer", "taskq-worker"}, rules
    return rules


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, redis.Redis]]:
    with redis_server(tmp_path, "--requirepass", ADMIN) as port:
        admin = redis.Redis(port=port, password=ADMIN, decode_responses=True)
        for user, args in documented_rules().items():
            admin.execute_command("ACL", "SETUSER", user, *args)
        yield port, admin
        admin.close()


def url(port: int, user: str, password: str) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{port}/0"


def test_producer_and_worker_users_are_enough(server: tuple[int, redis.Redis], workers: list[BackgroundWorker]) -> None:
    port, admin = server
    producer_url = url(port, "taskq-producer", "producer-password")
    with (
        taskq.TaskQueue(producer_url) as producer,
        taskq.TaskQueue(url(port, "taskq-worker", "worker-password")) as app,
    ):

        @app.task(queue="acl", max_retries=1)
        def add(a: int, b: int) -> int:
            if a < 0:
                raise ValueError("negative")
            return a + b

        worker = app.start_worker(queues=["acl"], idle_poll_s=0.1, lease_s=2)
        workers.append(worker)
        wait_until(lambda: add.name in producer.registered_tasks(), 30, "the worker to publish its tasks")
        good = producer.enqueue(add.name, [1, 2], queue="acl")
        bad = producer.enqueue(add.name, [-1, 2], queue="acl")
        later = producer.enqueue(add.name, [3, 4], queue="acl", delay_s=0.2, idempotency_key="k")
        assert good.result(timeout_s=30) == 3 and later.result(timeout_s=30) == 7
        with pytest.raises(taskq.TaskFailed):
            bad.result(timeout_s=30)
        producer.cancel(producer.enqueue(add.name, [5, 6], queue="acl", delay_s=60).id)
        assert producer.dead_letters("acl").requeue(all=True) == 1
        assert producer.stats("acl").dead == 0
        snapshot = producer.snapshot("acl")
        assert snapshot.queue("acl").counters["succeeded"] >= 2
        assert [w.id for w in snapshot.workers] == [worker.worker.id]
        assert any(e.type == "succeeded" for e in producer.events("acl", since="0", follow=False))
        producer.list_tasks("acl", "queued")
        producer.configure_queue("acl", aging_s=60)
        for args in (["stats"], ["workers"], ["events"], ["task", "show", good.id], ["dlq", "list", "-q", "acl"]):
            cli(producer_url, *args)
        worker.stop(grace_s=1)
    # nothing taskq did was refused along the way, but the worker's optional look at the
    # eviction policy (CONFIG GET, which it goes without)
    refused = admin.acl_log()
    assert [(e["username"], e["object"]) for e in refused] == [("taskq-worker", "config|get")], refused


def test_without_the_rights_a_typed_error(server: tuple[int, redis.Redis]) -> None:
    port, admin = server
    producer_rules = documented_rules()["taskq-producer"]
    elsewhere = [r for r in producer_rules if not r.startswith(("~", "&", ">"))] + ["~other:*", ">pw"]
    admin.execute_command("ACL", "SETUSER", "wrong-keys", *elsewhere)
    no_scripts = [r for r in producer_rules if r not in ("+evalsha", "+fcall")]  # FUNCTION LOAD alone runs nothing
    admin.execute_command("ACL", "SETUSER", "no-scripts", *no_scripts)
    admin.execute_command("ACL", "SETUSER", "no-scripts", ">pw2")
    for user_url, what in (
        (url(port, "wrong-keys", "pw"), "key"),
        (url(port, "no-scripts", "pw2"), "evalsha"),
        (url(port, "taskq-producer", "not-the-password"), "credentials"),
    ):
        with taskq.TaskQueue(user_url) as tq:
            with pytest.raises(taskq.AccessDenied, match=re.escape(what)):
                tq.enqueue("nobody.cares", force=True)
            if what != "evalsha":  # stats reads without scripts
                with pytest.raises(taskq.AccessDenied):
                    tq.stats()
        done = cli(user_url, "enqueue", "nobody.cares", "--force", check=False)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error:") and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with redis.Redis(port=port, password=ADMIN, decode_responses=True) as r:
        # no task written: only the queue registry (SADD, before the script) of the user that may write keys
        assert set(r.scan_iter()) <= {"taskq:queues"} and r.smembers("taskq:queues") <= {"default"}
