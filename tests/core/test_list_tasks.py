"""tq.list_tasks: pages of one place of a queue, against the real server."""

from __future__ import annotations

import random
import threading

import pytest
import redis
from helpers import claim, fail

import taskq


def ids_of(page: taskq.TaskPage) -> list[str]:
    return [t.id for t in page.tasks]


def all_pages(tq: taskq.TaskQueue, state: str, limit: int, queue: str = "default") -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = tq.list_tasks(queue, state, cursor=cursor, limit=limit)
        seen += ids_of(page)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_queued_pages_are_in_claim_order(tq: taskq.TaskQueue) -> None:
    ids = [tq.enqueue("t", force=True, priority=p).id for p in (1, 10, 5, 10, 5, 1, 7)]
    expected = [ids[i] for i in (1, 3, 6, 2, 4, 0, 5)]
    first = tq.list_tasks("default", "queued", limit=3)
    assert ids_of(first) == expected[:3] and first.next_cursor is not None
    assert all(t.status is taskq.TaskStatus.QUEUED for t in first.tasks)
    assert all_pages(tq, "queued", 3) == expected
    assert all_pages(tq, "queued", 7) == expected
    last = tq.list_tasks("default", "queued", limit=7)
    assert last.next_cursor is None
    assert claim(tq, n=7) and tq.list_tasks("default", "queued") == taskq.TaskPage([], None)


def test_scheduled_running_and_dead(tq: taskq.TaskQueue) -> None:
    later = tq.enqueue("t", force=True, delay_s=7200).id
    sooner = tq.enqueue("t", force=True, delay_s=3600).id
    assert all_pages(tq, "scheduled", 1) == [sooner, later]
    running = [tq.enqueue("t", force=True, max_retries=0).id for _ in range(5)]
    claimed = claim(tq, n=5)  # one batch: every lease has the same deadline, ordered by id
    assert all_pages(tq, "running", 2) == sorted(running)
    for task in claimed[:2]:
        assert fail(tq, task)[0] == "dead"
    dead = all_pages(tq, "dead", 1)
    assert sorted(dead) == sorted(t.id for t in claimed[:2])
    assert all(t.status is taskq.TaskStatus.DEAD for t in tq.list_tasks("default", "dead").tasks)


def test_pages_neither_skip_nor_repeat_while_the_queue_changes(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    """Tasks are enqueued and claimed between pages and by a thread meanwhile: every task that
    stays queued throughout is listed exactly once, and nothing is listed twice."""
    rng = random.Random(7)
    stay = {tq.enqueue("t", force=True, priority=rng.randint(1, 10), queue="stay").id for _ in range(60)}
    churn = [tq.enqueue("t", force=True, priority=rng.randint(1, 10), queue="churn").id for _ in range(60)]
    # One queue ("churn") changes; a task of it leaves only by being claimed. The listed queue
    # ("stay") gets new tasks of every priority (before and after the cursor) and loses some.
    stop = threading.Event()

    def add_meanwhile() -> None:
        with taskq.TaskQueue(tq.url) as other:
            while not stop.is_set():
                other.enqueue("t", force=True, priority=rng.randint(1, 10), queue="stay")

    adder = threading.Thread(target=add_meanwhile)
    adder.start()
    try:
        seen: list[str] = []
        cursor = None
        removed: set[str] = set()
        while True:
            page = tq.list_tasks("stay", "queued", cursor=cursor, limit=7)
            seen += ids_of(page)
            # remove a few: claimed tasks leave the queued set (they may have been listed already)
            for task in claim(tq, "stay", n=2):
                removed.add(task.id)
            claim(tq, "churn", n=1)
            tq.enqueue("t", force=True, priority=10, queue="stay")  # ahead of the cursor: not listed
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    finally:
        stop.set()
        adder.join()
    assert len(seen) == len(set(seen)), "a task was listed twice"
    assert stay - removed <= set(seen), "a task that stayed queued was skipped"
    assert churn  # the other queue's tasks never show up here
    assert not set(churn) & set(seen)


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda tq: tq.list_tasks("default", "succeeded"), "state"),
        (lambda tq: tq.list_tasks("default", "queued", limit=0), "limit"),
        (lambda tq: tq.list_tasks("default", "queued", limit=1001), "limit"),
        (lambda tq: tq.list_tasks("default", "queued", limit=True), "limit"),
        (lambda tq: tq.list_tasks("default", "queued", cursor="nonsense"), "cursor"),
        (lambda tq: tq.list_tasks("default", "queued", cursor="nan/x"), "cursor"),
        (lambda tq: tq.list_tasks("default", "queued", cursor="12/"), "cursor"),
    ],
)
def test_bad_arguments_are_refused(tq: taskq.TaskQueue, call: object, word: str) -> None:
    with pytest.raises(taskq.InvalidOption, match=word):
        call(tq)  # type: ignore[operator]


async def test_async_client_lists_the_same(tq: taskq.TaskQueue, redis_url: str) -> None:
    ids = [tq.enqueue("t", force=True).id for _ in range(3)]
    async with taskq.AsyncTaskQueue(redis_url) as aq:
        page = await aq.list_tasks("default", "queued", limit=2)
        rest = await aq.list_tasks("default", "queued", cursor=page.next_cursor)
    assert ids_of(page) + ids_of(rest) == ids and rest.next_cursor is None
