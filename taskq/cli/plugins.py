"""Optional subcommands, found through the ``taskq.cli`` entry-point group.

A distribution adds a command to ``taskq`` by declaring, in its pyproject.toml::

    [project.entry-points."taskq.cli"]
    serve = "taskq_api.cli:serve"

The entry point's name is the subcommand's name. Its object is either a
:class:`typer.Typer`: with exactly one command, that command is ``taskq NAME``; with
several, they are ``taskq NAME COMMAND``. It is loaded when ``taskq`` starts, so keep
the module it names light and import heavy things inside the command. The command may call
:func:`taskq.cli.settings_of` for the global ``--url`` / ``--prefix``, and
:func:`taskq.cli.reported_errors` to turn taskq errors into the one-line CLI error.

A plug-in that fails to load costs one warning line on stderr; every other command still
works. A known plug-in that is not installed (``taskq bench``), or whose optional
dependencies are not (``taskq serve`` without ``taskq[api]``), stays listed quietly and, when
run, says in one line how to install it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from taskq.cli.common import print_error, print_note

#: The entry-point group ``taskq`` reads its optional subcommands from.
GROUP = "taskq.cli"

#: Plug-ins the project knows of: subcommand -> (what it does, how to install it).
KNOWN_PLUGINS: dict[str, tuple[str, str]] = {
    "bench": (
        "Benchmark taskq next to its peers (the taskq-bench package).",
        "install the taskq-bench package: pip install -e ./benchmarks (in a taskq checkout; plots need taskq[bench])",
    ),
    "serve": (
        "Serve the HTTP API and WebSocket feed for an APP (the taskq[api] extra).",
        "install the API's dependencies: pip install 'taskq[api]'",
    ),
}

PluginCommand = TyperCommand | TyperGroup


def as_command(obj: object) -> PluginCommand:
    """The command a plug-in's entry point names: a :class:`typer.Typer` with one command
    (that command) or several (a group of them)."""
    if not isinstance(obj, typer.Typer):
        raise TypeError(f"expected a typer.Typer, got {type(obj).__name__}")
    command = typer.main.get_command(obj)
    if not isinstance(command, TyperCommand | TyperGroup):
        raise TypeError(f"a typer.Typer gave a {type(command).__name__}")
    return command


def _load(entry: EntryPoint) -> PluginCommand:
    """The plug-in's command; raises whatever loading it raised."""
    return as_command(entry.load())


def _warn_not_loaded(entry: EntryPoint, exc: Exception) -> None:
    where = f" (from {entry.dist.name})" if entry.dist is not None else ""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    print_note(f"warning: taskq plug-in {entry.name!r}{where} not loaded: {reason}")


def missing_plugin(name: str, summary: str, install: str) -> PluginCommand:
    """A stand-in for a known plug-in that is not installed: one error line saying how to get it."""
    stand_in = typer.Typer()

    @stand_in.command(
        name=name,
        help=f"{escape(summary)} Not installed.",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def run() -> None:
        print_error(f"`taskq {name}` is not installed: {install}")
        raise typer.Exit(1)

    return as_command(stand_in)


def add_plugins(group: TyperGroup) -> None:
    """Add every installed ``taskq.cli`` plug-in to ``group``, and stand-ins for known missing ones."""
    tried = set()
    for entry in entry_points(group=GROUP):
        if entry.name in group.commands:
            tried.add(entry.name)
            print_note(f"warning: taskq plug-in {entry.name!r} ignored: a built-in command has that name")
            continue
        try:
            command = _load(entry)
        except Exception as exc:  # noqa: BLE001 - any failure of a plug-in must leave the CLI working
            if not (isinstance(exc, ModuleNotFoundError) and entry.name in KNOWN_PLUGINS):
                tried.add(entry.name)  # broken, not missing: the warning says so, no stand-in
                _warn_not_loaded(entry, exc)
            continue  # a known plug-in whose modules are not installed: its stand-in says how
        tried.add(entry.name)
        command.name = entry.name  # listed under the entry point's name, not its function's
        group.add_command(command, entry.name)
    for name, (summary, install) in KNOWN_PLUGINS.items():
        if name not in tried:
            group.add_command(missing_plugin(name, summary, install), name)
