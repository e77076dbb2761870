"""JupyterLab in Debian's headless Chromium (Playwright): a notebook that shows a
`taskq_widgets.QueueMonitor` while an in-kernel worker drains a steady trickle of tasks renders
the monitor, and its numbers go up on screen (live, not a static render).

Skipped only when /usr/bin/chromium is missing and CI is not set; under CI a missing browser
fails. Leaves a screenshot in test-artifacts/jupyterlab-monitor.png."""

from __future__ import annotations

import re
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

SCREENSHOT = ARTIFACTS / "jupyterlab-monitor.png"
WIDGET_SCREENSHOT = ARTIFACTS / "jupyterlab-monitor-widget.png"
QUEUE = "browser"
# The monitor as the widget manager renders it inside a cell's output (not the static fallback).
MONITOR = ".jp-OutputArea-output .jupyter-widgets .taskq-monitor"

require_chromium(module=True)

CELLS = [
    """\
import os, threading
import taskq, taskq_widgets

tq = taskq.TaskQueue()  # finds the test's Redis through TASKQ_REDIS_URL
print("KERNEL-URL", tq.url)""",
    f"""\
@tq.task(queue={QUEUE!r})
def square(x: int) -> int:
    return x * x

worker = tq.start_worker(queues=[{QUEUE!r}], concurrency=2)""",
    """\
mon = taskq_widgets.QueueMonitor(tq, interval_s=0.25)
mon.start()
mon""",
    """\
stop = threading.Event()

def feed() -> None:
    # a steady trickle, so the numbers keep moving while the browser watches
    for i in range(100_000):
        if stop.wait(0.05):
            return
        square.enqueue(i)

threading.Thread(target=feed, daemon=True).start()
print("FEEDING")""",
]


def _number(page: Page, field: str) -> float | None:
    """The number shown in the monitor's ``data-field`` element, or None if there is none yet."""
    cell = page.locator(f'{MONITOR} [data-field="{field}"]').first
    if cell.count() == 0:
        return None
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell.text_content() or "")
    return float(match.group().replace(",", "")) if match else None


def _shows_number(page: Page, field: str) -> bool:
    return _number(page, field) is not None


@pytest.mark.timeout(LAB_START_S + 6 * STEP_S)  # above the suite's 300 s: the waits are bounds, not targets
def test_queue_monitor_renders_live_numbers_in_jupyterlab(lab: Lab, tq: taskq.TaskQueue) -> None:
    url = lab.notebook("monitor.ipynb", CELLS)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(STEP_S * 1000)
        with post_mortem(page, SCREENSHOT):
            open_notebook(page, url)
            run_all_cells(page)

            # The kernel talks to the test's Redis (its first cell prints the URL it found).
            assert wait_for_output(page, "KERNEL-URL").split() == ["KERNEL-URL", tq.url]
            wait_for_output(page, "FEEDING")

            monitor = page.locator(MONITOR).first
            monitor.wait_for(state="visible")
            monitor.scroll_into_view_if_needed()
            for field in ("pending", "running", "succeeded", "throughput", "p99_ms"):
                wait_for(partial(_shows_number, page, field), STEP_S, f"a number in {field}")

            # Live: the succeeded count on screen keeps climbing while tasks flow.
            shown = [_number(page, "succeeded") or 0.0]
            for _ in range(3):
                wait_for(
                    lambda: (_number(page, "succeeded") or 0.0) > shown[-1],
                    STEP_S,
                    f"succeeded to rise above {shown[-1]:g} on screen",
                )
                shown.append(_number(page, "succeeded") or 0.0)
            assert shown == sorted(shown) and shown[-1] > shown[0]
            # What the page shows came from Redis: never more than the queue has recorded.
            assert shown[-1] <= tq.stats(QUEUE).counters.get("succeeded", 0)
            page.screenshot(path=str(SCREENSHOT))
            monitor.screenshot(path=str(WIDGET_SCREENSHOT))
