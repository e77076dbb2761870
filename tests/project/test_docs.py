"""The docs' examples work as shown.

* Every ```python block of README.md, docs/BEGINNER_GUIDE.md and docs/INTERVIEW_PREP.md runs,
  top to bottom, one namespace per file, against the real test server: ``TASKQ_REDIS_URL``
  points there, so ``taskq.TaskQueue()`` in a doc connects to it as it would for a reader.
  Where a doc needs a worker it starts one itself (``tq.start_worker(...)``), as a notebook would.
* A block preceded by ``<!-- file: NAME.py -->`` is a module the reader saves: it is written to
  the working directory (which is importable) instead of being run.
* A block preceded by ``<!-- no-test: reason -->`` is skipped; the reason is required.
* Every ``taskq ...`` command the docs show (in shell blocks and in inline code) parses with the
  real command line, options and argument types included, and every ``make`` target exists.
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

import taskq
import taskq.cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/BEGINNER_GUIDE.md", "docs/INTERVIEW_PREP.md")
SHELL_LANGS = frozenset({"bash", "sh", "shell", "console"})
MARKER_RE = re.compile(r"^<!--\s*(no-test|file)\s*:\s*(.*?)\s*-->$")
INLINE_CODE_RE = re.compile(r"`([^`]+)`")
PYTHON_FILE_RE = re.compile(r"^[A-Za-z_]\w*\.py$")


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced code block of a Markdown file."""

    doc: str
    line: int  # line number (1-based) of the block's first code line
    lang: str
    code: str
    marker: str | None = None  # "no-test" or "file", from the comment just above the fence
    marker_arg: str = ""


def read_blocks(doc: str) -> list[Block]:
    """Every fenced block of ``doc`` (fences start at column 0), with its marker comment."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        lang = lines[i][3:].strip()
        previous = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        marker = MARKER_RE.match(previous)
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{doc}:{i + 1}: code fence never closed"
        blocks.append(
            Block(
                doc,
                i + 2,
                lang,
                "\n".join(lines[i + 1 : end]) + "\n",
                marker.group(1) if marker else None,
                marker.group(2) if marker else "",
            )
        )
        i = end + 1
    return blocks


def prose(doc: str) -> str:
    """``doc`` without its fenced blocks."""
    kept: list[str] = []
    inside = False
    for line in (ROOT / doc).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def shell_lines(doc: str) -> list[str]:
    """Command lines of the shell blocks (continuations joined), then inline code spans."""
    out: list[str] = []
    for block in read_blocks(doc):
        if block.lang not in SHELL_LANGS or block.marker == "no-test":
            continue
        pending = ""
        for line in block.code.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            out.append(pending + line)
            pending = ""
    out += [" ".join(span.split()) for span in INLINE_CODE_RE.findall(prose(doc))]
    return out


def commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line: split at | & ; and drop comments and a '$ ' prompt."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: prose in backticks, not a command
        return
    current: list[str] = []
    for token in [*tokens, ";"]:
        if token and set(token) <= set("|&;"):
            if current and current[0] == "$":
                current = current[1:]
            if current:
                yield current
            current = []
        else:
            current.append(token)


def shown(program: str) -> list[tuple[str, list[str]]]:
    """(doc, argv after ``program``) for every ``program ...`` command the docs show."""
    return [
        (doc, argv[1:]) for doc in DOCS for line in shell_lines(doc) for argv in commands(line) if argv[0] == program
    ]


# ---------------------------------------------------------------------------
# The block reader itself


def test_block_reader_sees_the_examples() -> None:
    for doc in ("README.md", "docs/BEGINNER_GUIDE.md"):
        run = [b for b in read_blocks(doc) if b.lang == "python" and b.marker is None]
        assert run, f"{doc}: no Python example found to run"
    text = "\n".join((ROOT / doc).read_text(encoding="utf-8") for doc in DOCS)
    assert not re.search(r"^[ \t]+```", text, re.MULTILINE), "an indented code fence would escape these tests"


def test_markers_are_explicit() -> None:
    for doc in DOCS:
        for block in read_blocks(doc):
            if block.marker == "no-test":
                assert block.marker_arg, f"{doc}:{block.line}: say why the block cannot run (no-test: reason)"
            if block.marker == "file":
                assert block.lang == "python", f"{doc}:{block.line}: only Python files are written out"
                assert PYTHON_FILE_RE.match(block.marker_arg), f"{doc}:{block.line}: bad file name"


def test_commands_are_split_like_a_shell() -> None:
    line = """taskq task show q:1 | taskq dlq list --queue q   # comment; not a command"""
    assert list(commands(line)) == [["taskq", "task", "show", "q:1"], ["taskq", "dlq", "list", "--queue", "q"]]
    assert list(commands("""$ taskq enqueue t --args '["a b"]' && make demo""")) == [
        ["taskq", "enqueue", "t", "--args", '["a b"]'],
        ["make", "demo"],
    ]


# ---------------------------------------------------------------------------
# Python examples


def _clean_up(namespace: dict[str, Any], modules: list[Any]) -> None:
    """Stop workers and close connections a doc left open (it should not, unless it failed)."""
    values = list(namespace.values())
    for module in modules:
        values += list(vars(module).values())
    for value in values:
        if isinstance(value, taskq.BackgroundWorker) and value.alive:
            value.stop(grace_s=0)
    for value in values:
        if isinstance(value, taskq.TaskQueue | redis.Redis):
            value.close()


@pytest.mark.parametrize("doc", DOCS)
def test_python_examples_run(doc: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)  # files a doc writes land here, and its modules import from here
    monkeypatch.syspath_prepend(str(tmp_path))
    written: set[str] = set()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    threads_before = set(threading.enumerate())
    try:
        for block in read_blocks(doc):
            if block.lang != "python" or block.marker == "no-test":
                continue
            # Leading newlines keep the doc's line numbers in tracebacks.
            source = "\n" * (block.line - 1) + block.code
            if block.marker == "file":
                module = block.marker_arg.removesuffix(".py")
                compile(source, f"{ROOT / doc} ({block.marker_arg})", "exec")
                assert module not in sys.modules, f"{doc}:{block.line}: {module} would shadow an imported module"
                (tmp_path / block.marker_arg).write_text(block.code, encoding="utf-8")
                written.add(module)
                importlib.invalidate_caches()
                continue
            exec(compile(source, str(ROOT / doc), "exec"), namespace)
        running = [t.name for t in set(threading.enumerate()) - threads_before if t.name.startswith("taskq-worker")]
        assert not running, f"{doc} leaves workers running: {running} (end the example with worker.stop())"
    finally:
        modules = [sys.modules[name] for name in written if name in sys.modules]
        _clean_up(namespace, modules)
        for name in written:
            sys.modules.pop(name, None)


# ---------------------------------------------------------------------------
# Command lines


def _parse_taskq(argv: list[str]) -> str:
    """Parse ``taskq ARGV`` with the real command line and return the command it names.

    A bare command path (``enqueue``, ``dlq list``) only has to exist. Anything else is parsed
    in full, options and argument types included, on a fresh copy of the command tree whose
    command functions are stubs: nothing runs.
    """
    root = taskq.cli.command()  # the built-in commands and the installed plug-ins (bench, serve)
    invoked: list[str] = []

    def stub(command: Any, path: str) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            command.callback = lambda *args, **params: invoked.append(path)
            return
        for name, child in children.items():
            stub(child, f"{path} {name}".strip())

    stub(root, "")
    node = root
    for depth, word in enumerate(argv):  # a bare command name in prose, like `taskq enqueue`
        node = getattr(node, "commands", {}).get(word)
        if node is None:
            break
        if depth == len(argv) - 1:
            return " ".join(argv)
    root.main(args=argv, prog_name="taskq", standalone_mode=False)
    assert len(invoked) == 1, f"taskq {shlex.join(argv)} ran no command"
    return invoked[0]


TASKQ_COMMANDS = shown("taskq")


def test_docs_show_taskq_commands() -> None:
    names = {_parse_taskq(argv) for _, argv in TASKQ_COMMANDS}
    for expected in ("server", "worker", "enqueue", "stats", "task show", "dlq list", "dlq requeue"):
        assert expected in names, f"the docs no longer show `taskq {expected}`"


@pytest.mark.parametrize(
    ("doc", "argv"), TASKQ_COMMANDS, ids=[f"{doc}: taskq {shlex.join(argv)}" for doc, argv in TASKQ_COMMANDS]
)
def test_taskq_command_parses(doc: str, argv: list[str]) -> None:
    _parse_taskq(argv)


def test_parse_check_refuses_what_the_cli_refuses() -> None:
    assert _parse_taskq(["dlq", "requeue", "--queue", "emails", "--all"]) == "dlq requeue"
    bad_lines = (
        ["enqueue", "t", "--bogus"],  # no such option
        ["worker", "a:b", "--processes", "N"],  # not an integer
        ["nosuch"],  # no such command
        ["enqueue", "--queue", "q"],  # missing argument
        ["task", "show", "q:1", "q:2"],  # extra argument
    )
    for bad in bad_lines:
        with pytest.raises(Exception, match=r"(?i)option|integer|command|missing|argument"):
            _parse_taskq(bad)


def test_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
    shown_targets = [(doc, word) for doc, argv in shown("make") for word in argv if "=" not in word and word[:1] != "-"]
    assert shown_targets, "the docs show no make target"
    for doc, target in shown_targets:
        assert target in targets, f"{doc} shows `make {target}`, which the Makefile lacks"
