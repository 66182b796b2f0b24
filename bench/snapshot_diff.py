"""A snapshot step diffing (`diff: true`) against the same snapshot reconciled in full.

    python bench/snapshot_diff.py                       # 500,000 lines, 1% changed
    python bench/snapshot_diff.py --lines 100000 --rounds 5 --changed 0.05

A SQLite site (50,000 users, 2,000 courses) takes a first roster snapshot of --lines
enrolments (every course, the same number of users each) through an enrolments step in
`mode: snapshot` with `diff: true`: that run is the template (not timed). The next
night's roster differs in --changed of its lines (half of them gone, as many new).
Each round, two fresh copies of the template apply it: one as the step does on an
ordinary night (diff), one with --full-reconcile (the whole file compared with the
database), and one as a step without `diff` does (what keeping the snapshot costs a
full reconcile), rotating which goes first. Prints each side's timings and peak RSS,
their medians and the medians of the rounds' ratios, and checks that every side
leaves the same enrolments.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import POSTSYNC, Timing, timed
from bench.site import build_site

PLAYBOOK = """\
name: roster
area: area
database: "sqlite:///{db}"
sync:
  - command: enrolments
    file: roster.csv
    settle_seconds: 0
    mode: snapshot
    missing: unenrol
    first_snapshot: apply
    diff: true
    full_every: 1000
"""
USERS, COURSES = 50_000, 2_000


def roster(lines: int, seed: int = 1) -> list[tuple[int, int]]:
    """(course, user) pairs: every course, lines // COURSES distinct users each."""
    rng = random.Random(seed)
    each = lines // COURSES
    return [(c, u) for c in range(1, COURSES + 1) for u in rng.sample(range(1, USERS + 1), each)]


def night(pairs: list[tuple[int, int]], changed: float, seed: int = 2) -> list[tuple[int, int]]:
    """The roster with `changed` of its lines different: half gone, as many new."""
    rng = random.Random(seed)
    gone = set(rng.sample(range(len(pairs)), int(len(pairs) * changed / 2)))
    kept = [p for i, p in enumerate(pairs) if i not in gone]
    present = set(pairs)
    new: list[tuple[int, int]] = []
    while len(new) < len(gone):
        pair = (rng.randrange(1, COURSES + 1), rng.randrange(1, USERS + 1))
        if pair not in present:
            present.add(pair)
            new.append(pair)
    return kept + new


def write(path: Path, pairs: list[tuple[int, int]]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("cmd;cid;uid;rolename\n")
        out.writelines(f"add;C{c:06d};U{u:07d};student\n" for c, u in pairs)


def enrolments(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM mdl_user_enrolments").fetchone()[0])


def reconcile(area: Path) -> str:
    """How the newest run read its snapshot (diff or full)."""
    newest = max((area / ".postsync" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return str(json.loads(newest.read_text())["control_files"][0]["reconcile"]["mode"])


def apply(template: Path, feed: Path, *args: str, plain: bool = False) -> tuple[Timing, int]:
    """One run on a fresh copy of the template (the copy is not timed)."""
    # in the template's own place: a snapshot step is named by its area's path
    run = template.parent / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(template, run, symlinks=True)
    try:
        template.rename(template.parent / "template.aside")
        run.rename(template)
        shutil.copy(feed, template / "area" / "roster.csv")
        if plain:  # the same step without diff
            playbook = template / "playbook.yml"
            playbook.write_text(playbook.read_text().replace("    diff: true\n", ""))
        timing = timed([*POSTSYNC, "run", "playbook.yml", *args], template)
        if not plain:
            mode = reconcile(template / "area")
            assert mode == ("full" if args else "diff"), f"{args}: read as {mode}"
        return timing, enrolments(template / "site.db")
    finally:
        shutil.rmtree(template, ignore_errors=True)
        (template.parent / "template.aside").rename(template)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="postsync-snapdiff-", dir=args.work))
    try:
        template = work / "template"
        (template / "area").mkdir(parents=True)
        build_site(f"sqlite:///{template / 'site.db'}", users=USERS, courses=COURSES)
        first = roster(args.lines)
        write(template / "area" / "roster.csv", first)
        (template / "playbook.yml").write_text(PLAYBOOK.format(db=template / "site.db"))
        print(f"first snapshot: {len(first):,} lines", flush=True)
        seconds = timed([*POSTSYNC, "run", "playbook.yml"], template).seconds
        print(f"  applied in {seconds:.1f} s (the template, not compared)", flush=True)
        (template / "area" / "roster.csv").unlink()
        feed = work / "night.csv"
        second = night(first, args.changed)
        write(feed, second)
        print(f"next night: {len(second):,} lines, {args.changed:.1%} of them changed")
        diffs: list[Timing] = []
        fulls: list[Timing] = []
        plains: list[Timing] = []
        counts = set()
        for r in range(args.rounds):
            sides = [(diffs, (), False), (fulls, ("--full-reconcile",), False), (plains, (), True)]
            shift = r % len(sides)
            for timings, extra, plain in sides[shift:] + sides[:shift]:
                timing, count = apply(template, feed, *extra, plain=plain)
                timings.append(timing)
                counts.add(count)
            d, f, p = diffs[-1], fulls[-1], plains[-1]
            print(
                f"  round {r + 1}: diff {d.seconds:.2f} s ({d.maxrss_kb // 1024} MB),"
                f" full {f.seconds:.2f} s ({f.maxrss_kb // 1024} MB),"
                f" no diff {p.seconds:.2f} s ({p.maxrss_kb // 1024} MB)",
                flush=True,
            )
        assert len(counts) == 1, f"the sides left different enrolments: {counts}"
        ratio = statistics.median(d.seconds / f.seconds for d, f in zip(diffs, fulls, strict=True))
        keeping = statistics.median(
            f.seconds / p.seconds for f, p in zip(fulls, plains, strict=True)
        )
        for name, side in (("diff", diffs), ("full reconcile", fulls), ("no diff", plains)):
            print(
                f"{name}: {', '.join(f'{t.seconds:.2f}' for t in side)} s (median"
                f" {statistics.median(t.seconds for t in side):.2f} s); peak RSS"
                f" {', '.join(str(t.maxrss_kb // 1024) for t in side)} MB"
            )
        left = counts.pop()
        print(f"diff / full: {ratio:.3f}x (median of the rounds' ratios); {left:,} enrolments")
        print(f"full reconcile / no diff (keeping the snapshot): {keeping:.3f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
