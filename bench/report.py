"""bench/RESULTS.md: the machine, each workload's medians and ratios."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import ROOT, Result


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), {platform.platform()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]


def write_results(results: list[Result], path: Path, args: argparse.Namespace, pg: str) -> None:
    lines = [
        "# postsync benchmarks",
        "",
        "Produced by `tox -e bench` (`python bench/run.py`). Each workload and its baseline",
        "run in fresh processes, alternating which goes first; medians of"
        f" {args.rounds} rounds (B1: {args.rounds * 3}; B2, whose disk work varies most from"
        f" round to round: {args.rounds * 2}).",
        "Ratios are ours / baseline, measured in the same run.",
        "",
        *machine(),
        f"- PostgreSQL: {pg}",
        f"- scale: {args.scale}",
        "",
        "| | workload | ours (median) | baseline (median) | ratio | target | met |"
        + (" ansible-playbook (extrapolated) |" if any(r.ansible for r in results) else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if any(r.ansible for r in results) else ""),
    ]
    for r in results:
        met = r.verdict()
        ansible = ""
        if any(x.ansible for x in results):
            ansible = (
                f" {r.ansible_extrapolated:,.0f} s ({r.ansible_extrapolated / r.ours_median:,.0f}x"
                " ours) |"
                if r.ansible
                else " |"
            )
        lines.append(
            f"| {r.key} | {r.title} | {r.ours_median:.3f} s | {r.base_median:.3f} s"
            f" | {r.ratio:.2f}x | {r.target} | {met} |{ansible}"
        )
    lines += ["", "## Details", ""]
    for r in results:
        lines.append(f"### {r.key}: {r.title}")
        lines.append("")
        for k, v in r.extra.items():
            lines.append(f"- {k}: {v}")
        lines.append(f"- ours: {', '.join(f'{t.seconds:.3f}' for t in r.ours)} s")
        lines.append(f"- baseline: {', '.join(f'{t.seconds:.3f}' for t in r.base)} s")
        if r.floor:
            lines.append(f"- floor ({r.floor_label}):")
            lines.append(
                f"  {', '.join(f'{t.seconds:.3f}' for t in r.floor)} s,"
                f" median {r.floor_median:.3f} s = {r.floor_median / r.base_median:.2f}x"
                f" the baseline; ours is {r.ours_median / r.floor_median:.2f}x the floor"
            )
        for label, timings in r.others.items():
            median = statistics.median(t.seconds for t in timings)
            lines.append(f"- {label}:")
            lines.append(
                f"  {', '.join(f'{t.seconds:.3f}' for t in timings)} s,"
                f" median {median:.3f} s = {median / r.base_median:.2f}x the baseline;"
                f" ours is {r.ours_median / median:.2f}x it"
            )
        if r.ansible:
            each = statistics.median(t.seconds for t in r.ansible) / r.ansible_sample
            lines.append(
                f"- ansible-playbook on {r.ansible_sample} of the files:"
                f" {', '.join(f'{t.seconds:.1f}' for t in r.ansible)} s, {each * 1000:.0f} ms a"
                f" file: {r.ansible_extrapolated:,.0f} s for the whole workload (extrapolated),"
                f" {r.ansible_extrapolated / r.ours_median:,.0f}x ours"
            )
        lines += [f"- {n}" for n in r.notes]
        lines.append("")
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    path.write_text("\n".join(lines) + "\n")
