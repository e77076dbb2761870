"""StateFlow and Timeline in JupyterLab (Debian's headless Chromium, Playwright): with an
in-kernel worker draining a trickle of tasks, tokens appear on the diagram and move (a dead
task, once purged, is counted in purged), and bars appear on the Gantt chart and slide as
time passes. Screenshots: test-artifacts/stateflow.png and timeline.png.

A measurement too (figures, not assertions on time): about 1,000 tasks a second are driven
through a StateFlow in the page for a few seconds, and the frames the page dropped
(requestAnimationFrame gaps) and the browser's CPU time (CDP Performance.getMetrics) are
written to test-artifacts/stateflow-load.json. Asserted: the page still answers, and the
widget sampled its tokens."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from helpers import wait_until
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

require_chromium(module=True)

QUEUE = "teach"
# The live widgets as the widget manager renders them (the static fallbacks have other classes).
FLOW = ".jp-OutputArea-output .taskq-stateflow"
TIMELINE = ".jp-OutputArea-output .taskq-timeline"
LOAD_S = 5.0
RATE = 1000

CELLS = [
    """\
import threading, random
import taskq, taskq_widgets

tq = taskq.TaskQueue()
print("KERNEL-URL", tq.url)""",
    f"""\
@tq.task(queue={QUEUE!r})
def work(ms: int) -> int:
    import time; time.sleep(ms / 1000)
    return ms

worker = tq.start_worker(queues=[{QUEUE!r}], concurrency=3)""",
    f"flow = taskq_widgets.StateFlow(tq, queues=[{QUEUE!r}])\nflow",
    f"line = taskq_widgets.Timeline(tq, queues=[{QUEUE!r}], window_s=10)\nline",
    """\
stop = threading.Event()

def feed() -> None:
    while not stop.wait(0.15):
        work.enqueue(random.randint(100, 600), priority=random.choice([2, 5, 9]))

threading.Thread(target=feed, daemon=True).start()
print("FEEDING")""",
    f"""\
import time

@tq.task(queue={QUEUE!r}, max_retries=0)
def doomed() -> None:
    raise ValueError("a bug: purge it")

doomed_id = doomed.enqueue(priority=9).id
deadline = time.monotonic() + 60
while tq.get(doomed_id).status is not taskq.TaskStatus.DEAD:
    assert time.monotonic() < deadline, "the doomed task never died"
    time.sleep(0.05)
print("PURGE-DONE", tq.dead_letters({QUEUE!r}).purge([doomed_id]))""",
]

# Returns, after ``ms``, whether an element found by ``selector`` (keyed by ``key``) changed
# ``attrs``: the picture moves, not only appears.
MOVED_JS = """async ([selector, key, attrs, ms]) => {
  const read = () => new Map([...document.querySelectorAll(selector)].map((e) => [
    e.getAttribute(key) + "/" + (e.getAttribute("data-attempt") || ""), attrs.map((a) => e.getAttribute(a)).join()]));
  const before = read();
  await new Promise((r) => setTimeout(r, ms));
  const after = read();
  return [...before].some(([k, v]) => after.has(k) && after.get(k) !== v);
}"""


def _dataset(page: Page, selector: str, name: str) -> int:
    value = page.locator(selector).first.get_attribute(f"data-{name}")
    return int(value) if value else 0


def _moved(page: Page, selector: str, attrs: list[str]) -> bool:
    return bool(page.evaluate(MOVED_JS, [selector, "data-task", attrs, 250]))


@pytest.mark.timeout(LAB_START_S + 6 * STEP_S)
def test_stateflow_and_timeline_move_with_live_tasks(lab: Lab, tq: taskq.TaskQueue) -> None:
    url = lab.notebook("teaching.ipynb", CELLS)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(STEP_S * 1000)
        with post_mortem(page, ARTIFACTS / "stateflow.png"):
            open_notebook(page, url)
            run_all_cells(page)
            assert wait_for_output(page, "KERNEL-URL").split() == ["KERNEL-URL", tq.url]
            wait_for_output(page, "FEEDING")

            flow = page.locator(FLOW).first
            flow.wait_for(state="visible")
            flow.scroll_into_view_if_needed()
            wait_for(lambda: _dataset(page, FLOW, "played") > 0, STEP_S, "StateFlow to play moves")
            token = f"{FLOW} circle.taskq-token"
            wait_for(lambda: _moved(page, token, ["cx", "cy"]), STEP_S, "a token to move on the diagram")
            played = _dataset(page, FLOW, "played")
            wait_for(lambda: _dataset(page, FLOW, "played") > played, STEP_S, "more moves played")
            # the counts on the diagram come from the queue's events: succeeded never exceeds Redis's
            succeeded = page.locator(f'{FLOW} g[data-node="succeeded"] .taskq-count').first
            wait_for(lambda: int(succeeded.text_content() or 0) > 0, STEP_S, "a count in succeeded")
            assert int(succeeded.text_content() or 0) <= tq.stats(QUEUE).counters.get("succeeded", 0)
            assert page.locator(f'{FLOW} g[data-node="q9"]').count() == 1
            # a purged dead task leaves dead along dead -> purged (its `purged` event)
            assert "PURGE-DONE 1" in wait_for_output(page, re.compile(r"PURGE-DONE \d+"))  # (has_text ignores case)
            purged = page.locator(f'{FLOW} g[data-node="purged"] .taskq-count').first
            wait_for(lambda: (purged.text_content() or "") == "1", STEP_S, "the purged task's count on the diagram")
            assert page.locator(f'{FLOW} text[data-edge="dead>purged"]').first.text_content() == "dead\u2192purged 1"
            flow.screenshot(path=str(ARTIFACTS / "stateflow.png"))

            line = page.locator(TIMELINE).first
            line.scroll_into_view_if_needed()
            wait_for(lambda: _dataset(page, TIMELINE, "bars") >= 3, STEP_S, "bars on the timeline")
            bar = f"{TIMELINE} rect.taskq-bar"
            wait_for(lambda: _moved(page, bar, ["x", "width"]), STEP_S, "bars to slide or grow as time passes")
            outcomes = page.locator(f'{bar}[data-outcome="succeeded"]')
            wait_for(lambda: outcomes.count() > 0, STEP_S, "a succeeded bar")
            assert page.locator(f"{TIMELINE} text.taskq-row").count() >= 1
            line.screenshot(path=str(ARTIFACTS / "timeline.png"))


FRAMES_JS = """async (ms) => {
  const deltas = [];
  let last = performance.now();
  await new Promise((resolve) => {
    const end = last + ms;
    const tick = (now) => { deltas.push(now - last); last = now; now < end ? requestAnimationFrame(tick) : resolve(); };
    requestAnimationFrame(tick);
  });
  return deltas;
}"""


@pytest.mark.timeout(LAB_START_S + 6 * STEP_S)
def test_stateflow_under_load_stays_responsive(
    lab: Lab, tq: taskq.TaskQueue, workers: list[taskq.BackgroundWorker]
) -> None:
    cells = [
        "import taskq, taskq_widgets\ntq = taskq.TaskQueue()\nprint('KERNEL-URL', tq.url)",
        f"flow = taskq_widgets.StateFlow(tq, queues=[{QUEUE!r}])\nflow",
    ]
    url = lab.notebook("load.ipynb", cells)

    @tq.task(queue=QUEUE)
    def noop() -> None:
        return None

    stop = threading.Event()
    sent = [0]

    def drive() -> None:  # about RATE tasks a second, in batches of a tenth of it
        batch = [{"name": noop.name, "queue": QUEUE}] * (RATE // 10)
        next_at = time.monotonic()
        while not stop.is_set():
            tq.enqueue_many(batch)
            sent[0] += len(batch)
            next_at += 0.1
            stop.wait(max(0.0, next_at - time.monotonic()))

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(STEP_S * 1000)
        with post_mortem(page, ARTIFACTS / "stateflow-load.png"):
            open_notebook(page, url)
            run_all_cells(page)
            wait_for_output(page, "KERNEL-URL")
            page.locator(FLOW).first.wait_for(state="visible")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            idle = page.evaluate(FRAMES_JS, 1000)

            workers.append(tq.start_worker(queues=[QUEUE], concurrency=50))
            driver = threading.Thread(target=drive, daemon=True)
            before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            started = time.monotonic()
            driver.start()
            try:
                deltas = page.evaluate(FRAMES_JS, int(LOAD_S * 1000))
                wall = time.monotonic() - started
                after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                sampling = page.locator(f'{FLOW} [data-field="sampling"]').first.text_content() or ""
                shown_rate = page.locator(f'{FLOW} [data-field="rate"]').first.text_content() or ""
                answered = page.evaluate("() => document.querySelectorAll('circle.taskq-token').length")
            finally:
                stop.set()
                driver.join(10)
            enqueued = sent[0]
            wait_until(lambda: tq.stats(QUEUE).counters.get("succeeded", 0) >= enqueued, 120, "the load drained")

    frame_ms = sorted(idle)[len(idle) // 2] if idle else 16.7
    dropped = sum(max(0, round(d / frame_ms) - 1) for d in deltas)
    figures = {
        "tasks_enqueued": enqueued,
        "seconds": round(wall, 2),
        "tasks_per_s": round(enqueued / wall, 1),
        "widget_rate": shown_rate,
        "sampling": sampling,
        "frames": len(deltas),
        "frame_ms_idle_median": round(frame_ms, 2),
        "frames_dropped": dropped,
        "frame_ms_p50": round(sorted(deltas)[len(deltas) // 2], 2) if deltas else None,
        "frame_ms_max": round(max(deltas), 2) if deltas else None,
        "browser_cpu_share": round((after["TaskDuration"] - before["TaskDuration"]) / wall, 3),
        "script_s": round(after["ScriptDuration"] - before["ScriptDuration"], 3),
        "tokens_on_screen": answered,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "stateflow-load.json").write_text(json.dumps(figures, indent=1))
    print("stateflow-load", json.dumps(figures))
    assert isinstance(answered, int)  # the page answered an evaluate() after the load
    assert sampling.startswith("sampling"), figures
