"""One Markdown page with every table of a run and the time each stage took.

The workflow's ``results_summary`` rule writes ``{results_dir}/summary.md``
from the tables' Markdown files and the per-job timing files that Snakemake's
``benchmark:`` directive writes under ``{results_dir}/benchmarks/``. The
README's results section is this page from the default run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_path


@dataclass(frozen=True)
class StageTime:
    """Summed timing of the jobs of one workflow stage (the first folder under benchmarks/)."""

    stage: str
    jobs: int
    wall_s: float
    cpu_s: float


def stage_times(benchmarks_dir: str | os.PathLike) -> list[StageTime]:
    """Sum the wall and CPU seconds of every job's timing file, by stage.

    Each file is a Snakemake benchmark TSV whose last row contains the columns
    ``s`` (wall seconds) and ``cpu_time``. Stages are sorted by wall time,
    longest first. A folder without timing files gives an empty list.
    """
    totals: dict[str, list[float]] = {}
    root = Path(benchmarks_dir)
    for path in sorted(root.rglob("*.tsv")):
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        stage = path.relative_to(root).parts[0]
        entry = totals.setdefault(stage, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += float(rows[-1]["s"])
        # Snakemake writes "NA" for CPU time it could not measure.
        cpu = rows[-1].get("cpu_time", "NA")
        entry[2] += float(cpu) if cpu not in ("", "NA") else 0.0
    times = [StageTime(stage, int(n), wall, cpu) for stage, (n, wall, cpu) in totals.items()]
    return sorted(times, key=lambda t: t.wall_s, reverse=True)


def stage_time_markdown(times: Sequence[StageTime]) -> str:
    """Return a Markdown table of ``times`` with each stage's share of the summed wall time."""
    total = sum(t.wall_s for t in times) or 1.0
    lines = [
        "| stage | timed jobs | summed job wall time (min) | share | CPU time (min) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for t in times:
        lines.append(
            f"| {t.stage} | {t.jobs} | {t.wall_s / 60:.1f} | {100 * t.wall_s / total:.0f}% "
            f"| {t.cpu_s / 60:.1f} |"
        )
    return "\n".join(lines)


def write_summary(
    table_paths: Sequence[str | os.PathLike],
    benchmarks_dir: str | os.PathLike,
    out_path: str | os.PathLike,
) -> None:
    """Write ``out_path``: the stage timings, then every table's Markdown in the given order.

    Links in the tables are relative to ``{results_dir}/tables/``, so they
    are rewritten relative to the summary's folder to keep them resolving.
    """
    out = Path(out_path)
    sections = [
        "# Results of this run",
        "",
        "Job times summed by stage, longest first. Jobs run side by side, so "
        "the sum exceeds the run's elapsed time. Only jobs with a timing file "
        "count; merging samples and drawing tables and figures take seconds.",
        "",
        stage_time_markdown(stage_times(benchmarks_dir)),
    ]
    for path in table_paths:
        table = Path(path)
        text = table.read_text(encoding="utf-8").strip()
        sections += ["", text.replace("](../../", f"]({_up_to_root(out, table)}")]
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(sections) + "\n", encoding="utf-8")


def _up_to_root(summary: Path, table: Path) -> str:
    """Return the prefix that replaces ``../../`` when a table's link moves into ``summary``.

    A table two folders below the repository root (``results/tables``) links
    to ``../../docs``, and the summary one folder below the root needs ``../docs``.
    """
    root = table.resolve().parent.parent.parent
    rel = os.path.relpath(root, summary.resolve().parent)
    return "" if rel == "." else rel.rstrip("/") + "/"
