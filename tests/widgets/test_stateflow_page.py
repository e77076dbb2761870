"""StateFlow's ES module alone in Debian's headless Chromium, driven by a stand-in model (the
few calls anywidget makes: get, on, off): what the diagram shows when the kernel's batches
arrive in a given order, without JupyterLab's timing in the way."""

from __future__ import annotations

from pathlib import Path

from labharness import chromium, wait_for
from webhelpers import require_chromium

require_chromium(module=True)

MODULE = Path(__file__).resolve().parents[2] / "widgets" / "taskq_widgets" / "frontend" / "stateflow.js"

# Loads the module from a blob URL and renders it into the page with a stand-in model;
# window.send(batch, slots) does what a kernel update does (new slots, then change:batch).
MOUNT_JS = """async (src) => {
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  const state = { batch: null, slots: [], error: "" };
  const listeners = {};
  const model = {
    get: (key) => state[key],
    on: (name, f) => { (listeners[name] ||= []).push(f); },
    off: () => {},
  };
  const host = document.createElement("div");
  document.body.appendChild(host);
  widget.render({ model, el: host });
  window.send = (batch, slots) => {
    state.slots = slots;
    state.batch = batch;
    for (const f of listeners["change:batch"] || []) f();
  };
}"""


def _batch(seq: int, moves: list[list[object]]) -> dict[str, object]:
    """A batch after a task died and was purged."""
    return {
        "seq": seq,
        "moves": moves,
        "occupancy": {"dead": 0, "purged": 1},
        "edges": {"running>dead": 1, "dead>purged": 1},
        "seen": 3,
        "sampling": False,
        "rate": 0,
    }


def test_a_new_worker_slot_redraws_the_diagram_with_its_counts() -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.evaluate(MOUNT_JS, MODULE.read_text())

        def text(selector: str) -> str:
            return page.locator(selector).first.text_content() or ""

        purged = 'g[data-node="purged"] .taskq-count'
        edge = 'text[data-edge="dead>purged"]'
        page.evaluate("b => window.send(b, ['w#0'])", _batch(1, []))
        wait_for(lambda: text(purged) == "1", 30, "the first batch's counts")
        assert text(edge) == "dead\u2192purged 1"
        # A second slot comes with a batch whose moves are still waiting their turn (the last
        # is an hour of event time away): the diagram is laid out again at once, and the
        # counts on it stay what was last played instead of dropping to zero.
        move = ["t1", "started", "q5", "w#1", 5, 1, "w", "teach"]
        waiting = [[1_000, *move], [3_601_000, *move]]
        page.evaluate("b => window.send(b, ['w#0', 'w#1'])", _batch(2, waiting))
        wait_for(lambda: page.locator('g[data-node="w#1"]').count() == 1, 30, "the new slot on the diagram")
        assert (text(purged), text(edge)) == ("1", "dead\u2192purged 1")
