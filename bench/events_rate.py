"""moodle_events' replay rate on the Moodle lab (tests/moodle/README.md): events a second.

    POSTSYNC_MOODLE_GIT=... POSTSYNC_MOODLE_REF=4.5 POSTSYNC_MOODLE_LAB=... \\
        python bench/events_rate.py --users 2500 --batch-size 500

On a fresh clone of the lab's seeded site: a users file makes `--users` users (run 1,
not replayed), then an enrolments file enrols each in the three seeded courses with a
group (`gaddcreate`, 20 groups a course): 3 x users lines, each a user enrolment, a
role assignment and a group membership (run 2). Then `postsync post RECORD` of run 2
with a playbook holding only moodle_events replays its journal: its wall time, the
step's events (the log rows Moodle wrote since) and their rate are printed. The clone
is dropped by the lab's next session (as the checks' clones are).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from tests.conftest import POSTSYNC, ROOT, postsync_process
from tests.moodle.lab import Lab, lab_root, source
from tests.moodle.test_moodle_events import events_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path("/tmp/postsync-events-rate"))
    args = parser.parse_args()
    lab = Lab(lab_root(), source()).ensure()
    site = lab.clone(f"t{os.getpid()}_9000")
    work = args.work / site.name
    (work / "area").mkdir(parents=True)
    users = "username;firstname;lastname;idnumber;email\n" + "".join(
        f"r{i:05d};R;{i};R{i:05d};r{i}@example.com\n" for i in range(args.users)
    )
    enrols = "cmd;cid;uid;rolename;enrol;gcmd;g1\n" + "".join(
        f"add;{course};R{i:05d};student;manual;gaddcreate;Team {i % 20}\n"
        for course in ("C101", "C102", "C103")
        for i in range(args.users)
    )
    (work / "area" / "users.csv").write_text(users)
    (work / "area" / "enrols.csv").write_text(enrols)
    head = f'name: Rate\narea: area\ndatabase: "{site.url}"\n'
    for name, command in (("users.yml", "users"), ("enrols.yml", "enrolments")):
        file = "users.csv" if command == "users" else "enrols.csv"
        (work / name).write_text(f"{head}sync:\n  - command: {command}\n    file: {file}\n")
        done = postsync_process("run", work / name, "-q")
        if done.returncode != 0:
            raise SystemExit(done.stdout + done.stderr)
    records = sorted((work / "area" / ".postsync" / "runs").glob("*.json"))
    record = records[-1]  # the enrolments run's
    journal = sum(
        len(part.read_bytes().splitlines())
        for part in (record.parent / record.stem).glob("*.journal")
    )
    book = work / "events.yml"
    book.write_text(head + events_step(site, args.batch_size))
    since = int(site.php("event_rows.php", "max")["max"] or 0)
    started = time.monotonic()
    replay = subprocess.run(
        [*POSTSYNC, "post", str(record), "--playbook", str(book)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if replay.returncode != 0:
        raise SystemExit(replay.stdout + replay.stderr)
    engine = create_engine(site.url)
    with engine.connect() as conn:
        query = text("SELECT COUNT(*) FROM mdl_logstore_standard_log WHERE id > :since")
        logged = int(conn.execute(query, {"since": since}).scalar() or 0)
    engine.dispose()
    print(replay.stdout.strip())
    print(
        json.dumps(
            {
                "release": lab.release,
                "lines": 3 * args.users,
                "journal_lines": journal,
                "batch_size": args.batch_size,
                "log_rows": logged,
                "seconds": round(seconds, 1),
                "events_per_second": round(logged / seconds),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
