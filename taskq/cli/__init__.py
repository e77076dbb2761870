"""The ``taskq`` command line: enqueue tasks, look at queues, tasks and workers, re-drive the
dead-letter queue, run a server or a worker.

Every command is a thin shell over the blocking API (:class:`taskq.TaskQueue`): read the
options, call one method, render the answer as rich tables or, with ``--json``, as JSON.
Any :class:`~taskq.errors.TaskqError` becomes one red ``error: ...`` line on stderr and exit
code 1; bad command-line input (invalid JSON, contradictory selectors) exits 2. One-shot
commands never start a throw-away server (``TaskQueue(embedded=False)``).

Modules: ``app`` (the root command and global options), ``common`` (settings, connection,
errors, output), ``render`` (rich tables and lines), ``logs`` (logging set-up), one module per
command group: ``tasks`` (enqueue, tasks, task), ``monitor`` (stats, events, workers, metrics),
``dlq``, ``server``, ``worker``; and ``plugins``.

Plug-ins (``taskq bench``, ``taskq serve``): optional subcommands come from the entry-point
group ``taskq.cli`` (:data:`taskq.cli.plugins.GROUP`). The entry point's name is the
subcommand; its object is a :class:`typer.Typer` holding one command (``taskq NAME``) or
several (``taskq NAME COMMAND``)::

    [project.entry-points."taskq.cli"]
    serve = "taskq_api.cli:serve"       # serve = typer.Typer(); @serve.command() def run(...)

A plug-in may use :func:`settings_of` (the global ``--url`` / ``--prefix``),
:func:`reported_errors`, :func:`check_url`, :func:`url_problem` and :func:`print_error` from
here. The core never imports a plug-in; one that fails to load costs one warning line, and
the rest keeps working.
"""

from taskq.cli.app import app, command, main
from taskq.cli.common import CliSettings, check_url, print_error, reported_errors, settings_of
from taskq.cli.plugins import GROUP
from taskq.server import url_problem

__all__ = [
    "GROUP",
    "CliSettings",
    "app",
    "check_url",
    "command",
    "main",
    "print_error",
    "reported_errors",
    "settings_of",
    "url_problem",
]
