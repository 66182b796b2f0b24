"""Two builds of postsync side by side on B4's sync: what a change costs.

    python bench/versus.py BEFORE AFTER             # two git revisions, e.g. main HEAD
    python bench/versus.py BEFORE AFTER --lines 250000 --rounds 5
    python bench/versus.py BEFORE AFTER --feed users --lines 100000
    python bench/versus.py BEFORE AFTER --database postgresql --lines 100000

Each revision is built into a virtual environment of its own (kept under --work, one per
commit), then both sync the same file (B4's enrolments: adds with groups, second roles,
removals, shifts, unknown users; or B8's users: new, updated, suspended, deleted)
into a fresh copy of the same site (SQLite, or with `--database postgresql` a
database of a PostgreSQL server started for the run, copied from a template), alternating
which goes first, `--rounds` times each. Prints each side's timings and peak RSS, their
medians, and the ratio AFTER/BEFORE taken round by round (the median of the pairs'
ratios: a pair runs back to back, so the machine's drift cancels out).

Measured with it: the change journal's cost (bench/RESULTS.md, "The change journal").
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.feeds import users_file
from bench.harness import ROOT, Timing, check_applied, timed
from bench.site import build_site, enrolment_file
from tests.pgserver import PostgresServer, start_server

#: each side's timings
Timings = list[list[Timing]]

PLAYBOOK = """\
name: versus
area: area
database: "{url}"
sync:
  - command: {command}
    file: feed.csv
    settle_seconds: 0
"""
#: the feeds it can time: B4's enrolments, B8's users (with their deletions)
FEEDS = ("enrolments", "users")


def build(rev: str, work: Path) -> tuple[str, Path]:
    """The revision's commit and the postsync of a virtual environment made from it."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    venv = work / f"venv-{commit[:12]}"
    postsync = venv / "bin" / "postsync"
    if not postsync.exists():
        tree = Path(tempfile.mkdtemp(prefix="postsync-versus-"))
        try:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "pip"), "install", "-q"]
            subprocess.run([*pip, f"{tree}[postgresql]"], check=True)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
    return commit, postsync


class Sites:
    """Fresh copies of the bench's site: SQLite files, or PostgreSQL databases made from
    a template database on a server of their own (`server`)."""

    def __init__(self, data: Path, server: PostgresServer | None) -> None:
        self.data, self.server = data, server
        self.count = 0

    def template(self) -> str:
        """The site's URL, to build it in."""
        if self.server is None:
            return f"sqlite:///{self.data / 'site.db'}"
        return self.server.create_database("versus_site")

    def fresh(self, run: Path) -> str:
        if self.server is None:
            shutil.copy(self.data / "site.db", run / "site.db")
            return f"sqlite:///{run / 'site.db'}"
        self.count += 1
        return self.server.create_database(f"versus_{self.count}", template="versus_site")

    def drop(self, url: str) -> None:
        if self.server is not None:
            self.server.drop_database(url)


def sync(postsync: Path, sites: Sites, command: str, lines: int) -> Timing:
    """One sync of the file into a fresh copy of the site (the copy is not timed); a
    run that did not apply its `lines` lines stops the comparison."""
    run = Path(tempfile.mkdtemp(prefix="run-", dir=sites.data))
    url = sites.fresh(run)
    try:
        (run / "area").mkdir()
        shutil.copy2(sites.data / "feed.csv", run / "area" / "feed.csv")
        (run / "playbook.yml").write_text(PLAYBOOK.format(url=url, command=command))
        timing = timed([str(postsync), "run", "playbook.yml"], run)
        check_applied(run / "area", lines)
        return timing
    finally:
        shutil.rmtree(run, ignore_errors=True)
        sites.drop(url)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--feed", choices=FEEDS, default="enrolments")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "versus")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sides = [build(rev, args.work) for rev in (args.before, args.after)]
    data = args.work / f"data-{args.feed}-{args.lines}"
    data.mkdir(exist_ok=True)
    if not (data / "feed.csv").exists():
        if args.feed == "users":
            users_file(data / "feed.csv", args.lines)
        else:
            enrolment_file(data / "feed.csv", args.lines, users=50_000, courses=2_000)
    server = start_server() if args.database == "postgresql" else None
    try:
        timings = compare(sides, Sites(data, server), args)
    finally:
        if server is not None:
            server.stop()
    report(sides, timings, args)


def compare(sides: list[tuple[str, Path]], sites: Sites, args: argparse.Namespace) -> Timings:
    """Each side's syncs, alternating which goes first."""
    if sites.server is not None or not (sites.data / "site.db").exists():
        build_site(sites.template(), users=50_000, courses=2_000)
    timings: Timings = [[], []]
    for r in range(args.rounds):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        for side in order:
            timings[side].append(sync(sides[side][1], sites, args.feed, args.lines))
            t = timings[side][-1]
            mb = t.maxrss_kb / 1024
            print(f"round {r + 1}: {sides[side][0][:10]} {t.seconds:.3f} s, {mb:.0f} MB")
    return timings


def report(sides: list[tuple[str, Path]], timings: Timings, args: argparse.Namespace) -> None:
    for (commit, _), runs, rev in zip(sides, timings, (args.before, args.after), strict=True):
        seconds = ", ".join(f"{t.seconds:.3f}" for t in runs)
        peaks = ", ".join(f"{t.maxrss_kb / 1024:.0f}" for t in runs)
        median = statistics.median(t.seconds for t in runs)
        print(f"{rev} ({commit[:10]}): {seconds} s (median {median:.3f}); peak {peaks} MB")
    ratios = [a.seconds / b.seconds for b, a in zip(timings[0], timings[1], strict=True)]
    pairs = ", ".join(f"{x:.3f}" for x in ratios)
    what = f"{args.lines:,} lines: {args.after}/{args.before}"
    print(f"{what} time {statistics.median(ratios):.3f}x (pairs: {pairs})")
    peak = [statistics.median(t.maxrss_kb for t in runs) / 1024 for runs in timings]
    print(f"peak RSS median: {peak[0]:.0f} MB -> {peak[1]:.0f} MB")


if __name__ == "__main__":
    main()
