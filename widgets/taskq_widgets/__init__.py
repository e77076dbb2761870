"""Notebook widgets for taskq: a live QueueMonitor, a Playground to submit demo tasks and
start, stop or kill workers, and a static HTML fallback. They read the core telemetry only
(``TaskQueue.snapshot()`` and ``TaskQueue.events()``)."""

from taskq_widgets.keyinspector import KeyInspector
from taskq_widgets.leases import Leases
from taskq_widgets.monitor import QueueMonitor
from taskq_widgets.playground import ManagedWorker, Playground
from taskq_widgets.stateflow import StateFlow
from taskq_widgets.static import render_html, render_text
from taskq_widgets.timeline import Timeline

__all__ = [
    "KeyInspector",
    "Leases",
    "ManagedWorker",
    "Playground",
    "QueueMonitor",
    "StateFlow",
    "Timeline",
    "render_html",
    "render_text",
]
