"""JupyterLab in Debian's headless Chromium (Playwright): KeyInspector and Leases rendered by the
widget manager with live data. The KeyInspector's rows appear in claim order and its totals grow
while a producer adds tasks; the Leases countdown runs down between heartbeats and jumps up at
each one, and the reaper's requeue of a frozen worker's lease shows in its event log.

Skipped only when /usr/bin/chromium is missing and CI is not set; under CI a missing browser
fails. Leaves screenshots in test-artifacts/keyinspector.png and test-artifacts/leases.png."""

from __future__ import annotations

from functools import partial

import pytest
from labharness import (
    ARTIFACTS,
    LAB_START_S,
    STEP_S,
    Lab,
    chromium,
    open_notebook,
    post_mortem,
    run_all_cells,
    wait_for,
    wait_for_output,
)
from playwright.sync_api import Page
from webhelpers import require_chromium

import taskq

KEYS_SHOT = ARTIFACTS / "keyinspector.png"
LEASES_SHOT = ARTIFACTS / "leases.png"
PAGE_SHOT = ARTIFACTS / "jupyterlab-teaching-a.png"
LQ, KQ = "bl-leases", "bl-keys"
# The widgets as their front ends draw them in a cell's output (the static fallbacks' roots are
# .taskq-keyinspector-static and .taskq-leases-static, which these do not match).
KEYS = ".jp-OutputArea-output .taskq-keyinspector"
LEASES = ".jp-OutputArea-output .taskq-leases"

require_chromium(module=True)

CELLS = [
    """\
import threading, time
import taskq, taskq_widgets

tq = taskq.TaskQueue()  # finds the test's Redis through TASKQ_REDIS_URL
print("KERNEL-URL", tq.url)""",
    f"""\
thaw, release = threading.Event(), threading.Event()

@tq.task(name="bl.freeze", queue={LQ!r})
async def freeze() -> str:
    if taskq.current_task().attempt == 1:
        thaw.wait(600)  # freezes its worker's event loop: no heartbeats, the lease runs out
    return "ok"

@tq.task(name="bl.hold", queue={LQ!r})
def hold() -> str:
    release.wait(600)  # holds its lease; the worker's heartbeats keep extending it
    return "ok"

leases = taskq_widgets.Leases(tq, {LQ!r}, interval_s=0.2)
leases.refresh()
frozen = tq.start_worker(queues=[{LQ!r}], concurrency=1, lease_s=4, heartbeat_s=1, worker_id="frozen")
freeze.enqueue()
while not tq.inspect({LQ!r}).running:
    time.sleep(0.05)
healthy = tq.start_worker(
    queues=[{LQ!r}], concurrency=2, lease_s=4, heartbeat_s=1.5, maintenance_s=0.5, worker_id="healthy"
)
hold.enqueue()
print("WORKERS-READY")""",
    "leases",
    f"""\
for p in (2, 9, 5):
    tq.enqueue("bl.key", force=True, queue={KQ!r}, priority=p)
tq.enqueue("bl.key", force=True, queue={KQ!r}, delay_s=600)
ki = taskq_widgets.KeyInspector(tq, {KQ!r}, interval_s=0.25, limit=8)
ki""",
    f"""\
stop = threading.Event()

def feed() -> None:
    # one task every 0.3 s at a rotating priority, so the sorted set keeps changing
    for i in range(2_000):
        if stop.wait(0.3):
            return
        tq.enqueue("bl.key", force=True, queue={KQ!r}, priority=1 + i % 10)

threading.Thread(target=feed, daemon=True).start()
print("FEEDING")""",
]


def _reveal(page: Page, selector: str) -> None:
    """Scroll the notebook until ``selector`` is visible: JupyterLab's windowed notebook hides the
    cells outside the viewport, widgets and all."""
    target = page.locator(selector).first
    panel = page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer").first
    panel.evaluate("e => e.scrollTo(0, 0)")
    for _ in range(60):
        if target.is_visible():
            target.scroll_into_view_if_needed()
            return
        panel.evaluate("e => e.scrollBy(0, 300)")
        page.wait_for_timeout(100)
    target.wait_for(state="visible")  # fails with Playwright's own message


def _queued_total(page: Page) -> int:
    total = page.locator(f'{KEYS} section[data-place="queued"] [data-field="total"]').first
    text = total.text_content() if total.count() else ""
    return int(text) if text and text.isdigit() else -1


def _queued_priorities(page: Page) -> list[int]:
    rows = page.locator(f'{KEYS} section[data-place="queued"] tr[data-id]')
    return [int(rows.nth(i).locator("td").nth(3).text_content() or "0") for i in range(rows.count())]


def _left_ms(page: Page, task_id: str) -> int | None:
    cell = page.locator(f'{LEASES} tr[data-id="{task_id}"] td.taskq-lease-left').first
    if cell.count() == 0:
        return None
    value = cell.get_attribute("data-left-ms")
    return int(value) if value is not None else None


def _hold_id(tq: taskq.TaskQueue) -> str | None:
    held = [r.id for r in tq.inspect(LQ).running if r.name == "bl.hold" and r.worker == "healthy"]
    return held[0] if held else None


@pytest.mark.timeout(LAB_START_S + 8 * STEP_S)  # above the suite's 300 s: the waits are bounds, not targets
def test_keyinspector_and_leases_render_live_data_in_jupyterlab(lab: Lab, tq: taskq.TaskQueue) -> None:
    url = lab.notebook("teaching_a.ipynb", CELLS)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(STEP_S * 1000)
        with post_mortem(page, PAGE_SHOT, "jupyterlab-teaching-a.html"):
            open_notebook(page, url)
            run_all_cells(page)
            assert wait_for_output(page, "KERNEL-URL").split() == ["KERNEL-URL", tq.url]
            wait_for_output(page, "WORKERS-READY")
            wait_for_output(page, "FEEDING")

            # KeyInspector: members appear in claim order (strict priority: highest first), the
            # scheduled one in its own set, and the queued total grows as the producer adds tasks.
            keys = page.locator(KEYS).first
            _reveal(page, KEYS)
            wait_for(lambda: len(_queued_priorities(page)) >= 3, STEP_S, "queued rows on screen")
            shown = _queued_priorities(page)
            assert shown == sorted(shown, reverse=True), shown
            page.locator(f'{KEYS} section[data-place="scheduled"] tr[data-id]').first.wait_for()
            first_total = _queued_total(page)
            wait_for(lambda: _queued_total(page) > first_total, STEP_S, f"the queued total to grow past {first_total}")
            assert _queued_total(page) <= tq.inspect(KQ).queued_total  # it came from Redis
            keys.screenshot(path=str(KEYS_SHOT))

            # Leases: the healthy worker's lease counts down between heartbeats, and each
            # heartbeat pushes it back up.
            leases = page.locator(LEASES).first
            _reveal(page, LEASES)
            wait_for(lambda: _hold_id(tq) is not None, STEP_S, "the hold task to be leased")
            hold_id = _hold_id(tq)
            assert hold_id is not None
            wait_for(lambda: _left_ms(page, hold_id) is not None, STEP_S, "the hold task's lease on screen")
            start = _left_ms(page, hold_id)
            assert start is not None and start <= 4000
            wait_for(partial(_below, page, hold_id, start), STEP_S, "the countdown to move down")
            low = _left_ms(page, hold_id)
            assert low is not None
            wait_for(partial(_above, page, hold_id, low), STEP_S, "a heartbeat to push the deadline on")
            # the frozen worker's lease ran out, and the reaper's requeue is in the event log
            page.locator(f'{LEASES} li[data-type="requeued"]').first.wait_for()
            assert tq.stats(LQ).counters.get("requeued", 0) >= 1
            leases.screenshot(path=str(LEASES_SHOT))


def _below(page: Page, task_id: str, value: int) -> bool:
    left = _left_ms(page, task_id)
    return left is not None and left < value


def _above(page: Page, task_id: str, value: int) -> bool:
    left = _left_ms(page, task_id)
    return left is not None and left > value
