"""The benchmark results page, generated from the saved results files by the harness's own code.

    python scripts/gen_bench_page.py [RESULTS_DIR]     # print the Markdown (plots are not written)

The documentation site calls :func:`bench_page` at build time. For every results file in
``benchmarks/results/`` (newest run first) the page shows the machine and the exact command
(both recorded in the file), the tables of :func:`taskq_bench.report.render` (what
``python -m taskq_bench.report FILE`` prints) and two plots drawn by :mod:`taskq_bench.plots`
(what notebook 7 draws): throughput per system, and latency against offered load. No figure is
typed by hand; rerun the harness and save its JSON here to update the page.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported (by taskq_bench.plots): no display needed

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from taskq_bench import plots, report

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"

INTRO = """\
# Benchmark results

taskq next to RQ, arq, SAQ, Celery, Dramatiq, Huey and taskiq, on one private `redis-server` per
system, each through its public API and its own worker command (how each figure is measured:
`benchmarks/README.md`). This page is generated when the site is built, from the results files
saved in `benchmarks/results/`, by the harness's own report code (`taskq_bench.report.render`,
the tables `python -m taskq_bench.report FILE` prints) and plot code (`taskq_bench.plots`, as in
the benchmarks notebook). The machine and the command are the ones each file recorded.

Every run here was made on a 2-core virtual machine shared with other jobs: read the load
average that each table states before comparing two figures.
"""


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def _section(path: Path, document: dict[str, Any]) -> tuple[str, dict[str, bytes]]:
    stem = path.stem
    images = {
        f"{stem}-throughput.png": _png(plots.plot_throughput(document)),
        f"{stem}-latency.png": _png(plots.plot_latency_vs_load(document)),
    }
    systems = ", ".join(document["settings"]["systems"])
    text = "\n\n".join([
        f"## {stem}",
        f"File `benchmarks/results/{path.name}`, started {document.get('started', '?')} on "
        f"{document['machine'].get('platform', 'an unrecorded platform')}; systems: {systems}.",
        report.render(document).rstrip(),
        f"![Enqueue and drain throughput per system, {stem}](bench/{stem}-throughput.png)",
        f"![Enqueue-to-start latency against offered load, {stem}](bench/{stem}-latency.png)",
    ])  # fmt: skip
    return text + "\n", images


def bench_page(results_dir: Path = RESULTS_DIR) -> tuple[str, dict[str, bytes]]:
    """The Markdown page and its plots (file name -> PNG bytes, to be served from ``bench/``)."""
    documents = [(path, json.loads(path.read_text(encoding="utf-8"))) for path in sorted(results_dir.glob("*.json"))]
    if not documents:
        raise FileNotFoundError(f"no results file (*.json) in {results_dir}")
    documents.sort(key=lambda item: str(item[1].get("started", "")), reverse=True)
    parts = [INTRO]
    images: dict[str, bytes] = {}
    for path, document in documents:
        text, pictures = _section(path, document)
        parts.append(text)
        images |= pictures
    return "\n".join(parts), images


def main() -> None:
    page, _ = bench_page(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR)
    print(page, end="")


if __name__ == "__main__":
    main()
