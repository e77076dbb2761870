"""The CLI reference page, generated from the ``taskq`` command itself: never written by hand.

    python scripts/gen_cli_ref.py            # print the Markdown page

The documentation site (mkdocs.yml, scripts/docs_hooks.py) calls :func:`cli_reference` at build
time. It walks the whole command, built-in commands and the installed plug-ins (``serve``,
``bench``) alike, with typer's own documentation generator (what ``typer … utils docs`` runs), so
every option, argument, default and help line is what ``taskq … --help`` prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import typer
import typer.cli

import taskq.cli

#: The rich console markup the CLI's help uses (``[bold]taskq[/]``, ``[dim]…[/]``): help text on
#: a terminal, noise in Markdown. Only these style names are removed, so ``[OPTIONS]`` and
#: ``[default: []]`` stay as they are.
RICH_TAG_RE = re.compile(r"\[/?(?:bold|dim|italic|cyan|green|red|yellow|blue|magenta|white)?\]")

INTRO = """\
Generated from the command itself (`scripts/gen_cli_ref.py`, typer's documentation generator over
`taskq.cli.command()`) when the site is built: the same text as `taskq COMMAND --help`, plug-ins
included. The global options `--url` and `--prefix` go before the command:
`taskq --url redis://host:6379/0 stats`.
"""


def command_paths(group: click.Command, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under ``group`` (``("dlq", "list")`` …), groups included."""
    for name, child in getattr(group, "commands", {}).items():
        if getattr(child, "hidden", False):
            continue
        yield (*prefix, name)
        yield from command_paths(child, (*prefix, name))


def _examples_as_code(text: str) -> str:
    """The root help's indented example lines become a console block instead of a run-on paragraph."""
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        indented = line.startswith("  ") and not line.startswith("   *") and line.strip()
        previous = next((kept for kept in reversed(out) if kept.strip()), "")
        if indented and not in_block and previous.strip().endswith("Example:"):
            out.append("```console")
            in_block = True
        if in_block and not indented:
            out += ["```", ""]
            in_block = False
        out.append(line[2:] if in_block else line)
    if in_block:
        out.append("```")
    return "\n".join(out) + "\n"


def cli_reference() -> str:
    """The Markdown page: one section per command, from typer's generator."""
    root = taskq.cli.command()
    ctx = typer.Context(root, info_name="taskq")
    body = typer.cli.get_docs_for_click(obj=root, ctx=ctx, name="taskq", title="CLI reference")
    body = RICH_TAG_RE.sub("", body)
    title, _, rest = body.partition("\n")
    return f"{title}\n\n{INTRO}\n{_examples_as_code(rest.lstrip())}"


def main() -> None:
    print(cli_reference(), end="")


if __name__ == "__main__":
    main()
