"""The anchors: postsync against what an administrator would use instead, on a real
Moodle site of the lab (tests/moodle/README.md), each tool on its own twin clone of the
same seeded site, from the same state, with the same rows to make.

    POSTSYNC_MOODLE_GIT=/path/to/hrsq1.git POSTSYNC_MOODLE_REF=4.5 \\
    POSTSYNC_TOOLSYNC_GIT=/path/to/moodle-tool_sync.git \\
        python bench/anchors.py --scale 1 --output bench/anchors.md

Workloads (at --scale 1; the issue's side-by-side table):

- 10,000 new users, half of them with a password: postsync's users feed; Moodle's
  admin/tool/uploaduser CLI (add new only, the others' passwords made by cron, as
  --uupasswordnew=1 does); tool_sync's users sync (its scheduled task's cron());
- the same 10,000 users, 10% of them with a new last name: the same tools again
  (uploaduser: add new and update existing, override with the file);
- 50,000 enrolments added (5,000 users in 10 courses, student): postsync's enrolments
  feed; tool_sync's enrolment sync; enrol_flatfile's scheduled task;
- 5,000 of them unenrolled (`del` lines): the same three.

And Moodle's own enrol_user while postsync applies the 50,000 enrolments (--latency):
a PHP process enrolling, again and again, users the file enrols in the same course,
each call timed: its worst and median latency with the file in one transaction, and
with `commit_every: {seconds: 1}`.

Each tool runs once a workload (the anchors take minutes); every timing is a wall
time of the command an administrator would run, PHP's start included. Every site is
checked to hold the rows the workload makes, so a tool that skipped its file times
nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lab_bench import (
    COURSES,
    ENROL_STEP,
    ENROLMENTS,
    HEAD,
    NEW_USERS,
    RENAMED,
    USERS_STEP,
    Twins,
    count,
    enrol_lines,
    hand_over,
    php,
    postsync,
    script,
    seed,
    textareas,
    users_file,
)
from bench.lock_wait import latency
from tests.moodle.lab import Lab, lab_root, source


def bench_users(twins: Twins, work: Path, n: int) -> dict[str, list[float]]:
    lab = twins.lab
    out: dict[str, list[float]] = {}
    new, changed = users_file(1, n, ";"), users_file(1, n, ";", 0.1)
    made = []
    site = twins.clone("postsync")
    made.append(site)
    out["postsync"] = [
        postsync(site, work, "users.csv", new, USERS_STEP),
        postsync(site, work, "users.csv", changed, USERS_STEP),
    ]
    site = twins.clone("uploaduser")
    made.append(site)
    tool = "admin/tool/uploaduser/cli/uploaduser.php"
    fields = textareas(site)
    first = hand_over(lab, "users-new.csv", users_file(1, n, ",", 0, fields))
    again = hand_over(lab, "users-changed.csv", users_file(1, n, ",", 0.1, fields))
    out["uploaduser"] = [
        php(site, tool, f"--file={first}", "--uutype=0", "--uupasswordnew=1"),
        php(site, tool, f"--file={again}", "--uutype=2", "--uuupdatetype=1"),
    ]
    site = twins.clone("tool_sync")
    made.append(site)
    sync = str(lab.scripts / "toolsync.php")  # the lab's own (tests/moodle/php)
    out["tool_sync"] = [
        php(site, sync, "users", hand_over(lab, "userimport-new.csv", new)),
        php(site, sync, "users", hand_over(lab, "userimport-changed.csv", changed)),
    ]
    for tool_name in out:
        print(f"  users {tool_name}: {out[tool_name]}", flush=True)
    for site in made:
        assert count(site, NEW_USERS) == n, f"{site.name}: not every user made"
        assert count(site, RENAMED) == int(n * 0.1), f"{site.name}: not every user renamed"
    return out


def bench_enrolments(twins: Twins, work: Path, users: int) -> dict[str, list[float]]:
    lab = twins.lab
    head = HEAD
    add = "\n".join([head, *enrol_lines(users, "add", ";")]) + "\n"
    gone = max(1, users // 10)
    delete = "\n".join([head, *enrol_lines(gone, "del", ";")]) + "\n"
    want = users * COURSES
    out: dict[str, list[float]] = {}
    site = twins.clone("postsync")
    step = ENROL_STEP.format(extra="")
    out["postsync"] = [postsync(site, work, "enrols.csv", add, step)]
    assert count(site, ENROLMENTS) == want, "postsync: not every enrolment made"
    out["postsync"].append(postsync(site, work, "enrols.csv", delete, step))
    assert count(site, ENROLMENTS) == want - gone * COURSES
    site = twins.clone("tool_sync")
    sync = str(lab.scripts / "toolsync.php")
    out["tool_sync"] = [php(site, sync, "enrols", hand_over(lab, "enrols-add.csv", add))]
    assert count(site, ENROLMENTS) == want, "tool_sync: not every enrolment made"
    out["tool_sync"].append(php(site, sync, "enrols", hand_over(lab, "enrols-del.csv", delete)))
    assert count(site, ENROLMENTS) == want - gone * COURSES
    site = twins.clone("enrol_flatfile")
    task = ["admin/cli/scheduled_task.php", "--execute=\\enrol_flatfile\\task\\flatfile_sync_task"]
    flat: list[float] = []
    for name, lines in (
        ("flatfile-add.txt", enrol_lines(users, "add", ",", True)),
        ("flatfile-del.txt", enrol_lines(gone, "del", ",", True)),
    ):
        location = hand_over(lab, name, "\n".join(lines) + "\n")
        php(site, script(lab, "flatfile.php"), location)
        flat.append(php(site, *task))
        if Path(location).exists():
            raise SystemExit(f"enrol_flatfile did not read {location}")
    out["enrol_flatfile"] = flat
    assert count(site, ENROLMENTS) == want - gone * COURSES
    for tool_name in out:
        print(f"  enrolments {tool_name}: {out[tool_name]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--only", choices=["users", "enrolments", "latency"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["users", "enrolments", "latency"])
    n_users = max(20, int(10_000 * args.scale))
    n_enrol = max(2, int(5_000 * args.scale))
    lab = Lab(lab_root(), source()).ensure()
    work = Path(tempfile.mkdtemp(prefix="postsync-anchors-"))
    print(f"lab {lab.release}; {n_users:,} users, {n_enrol * COURSES:,} enrolments", flush=True)
    twins = Twins(lab, seed(lab, work, n_enrol))
    results: dict[str, object] = {"release": lab.release, "facts": lab.facts()}
    try:
        if "users" in only:
            results["users"] = bench_users(twins, work, n_users)
        if "enrolments" in only:
            results["enrolments"] = bench_enrolments(twins, work, n_enrol)
        if "latency" in only:
            results["latency"] = {
                "one transaction": latency(twins, work, n_enrol, ""),
                "commit_every 1 s": latency(
                    twins, work, n_enrol, "    commit_every: {seconds: 1}\n"
                ),
            }
    finally:
        for name in [*twins.names, twins.seed.name]:
            lab.server.sql(f"DROP DATABASE IF EXISTS {name}")
            shutil.rmtree(lab.root / f"data_{name}", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    text = report(results, n_users, n_enrol * COURSES, args.scale)
    print(text)
    if args.output is not None:
        with args.output.open("a") as out:
            out.write(text)


def report(results: dict[str, object], users: int, enrolments: int, scale: float) -> str:
    """The side-by-side table, each anchor's time and its ratio to postsync's."""
    day = time.strftime("%Y-%m-%d")
    lines = [f"\n## Anchors on the lab, {day} (bench/anchors.py --scale {scale:g})\n"]
    lines.append(f"{results['release']}; " + "; ".join(results["facts"]) + "\n")  # type: ignore[operator]
    tools = ["postsync", "uploaduser", "tool_sync", "enrol_flatfile"]
    lines.append("| workload | " + " | ".join(tools) + " |")
    lines.append("|---" * (len(tools) + 1) + "|")
    rows = [
        (f"{users:,} new users, half with a password", "users", 0),
        (f"the same {users:,} users, 10% changed", "users", 1),
        (f"{enrolments:,} enrolments added", "enrolments", 0),
        (f"{enrolments // 10:,} of them unenrolled", "enrolments", 1),
    ]
    for title, kind, index in rows:
        found = results.get(kind)
        if not isinstance(found, dict):
            continue
        ours = found["postsync"][index]
        cells = []
        for tool in tools:
            if tool not in found:
                cells.append("-")
            elif tool == "postsync":
                cells.append(f"{ours:.1f} s")
            else:
                theirs = found[tool][index]
                cells.append(f"{theirs:.1f} s ({theirs / ours:.1f}x postsync)")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    waits = results.get("latency")
    if isinstance(waits, dict):
        lines.append(
            f"\nMoodle's enrol_user (manual plugin, users the file enrols in the same course,"
            f" one call after another) while postsync adds the {enrolments:,} enrolments:\n"
        )
        lines.append("| postsync | its run | calls | median | worst | calls over 1 s |")
        lines.append("|---|---|---|---|---|---|")
        for name, w in waits.items():
            lines.append(
                f"| {name} | {w['run']:.1f} s | {w['calls']} | {w['median'] * 1000:.0f} ms |"
                f" {w['worst']:.2f} s | {w['over_1s']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
