"""Moodle's own enrol_user while postsync writes: how long a teacher's request waits
for the rows postsync holds, with a file in one transaction and in chunks
(`commit_every`). Run by bench/anchors.py (--only latency)."""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import POSTSYNC, ROOT, check_applied
from bench.lab_bench import COURSES, ENROL_STEP, HEAD, Twins, enrol_lines, script
from tests.moodle.lab import Site


def first_write(site: Site, deadline: float) -> None:
    """Until a transaction other than this one holds a transaction id on the site's
    database (it wrote a row: postsync's first batch)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(site.url, isolation_level="AUTOCOMMIT")
    sql = text(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    )
    try:
        with engine.connect() as conn:
            while not conn.execute(sql).scalar_one():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{site.name}: no write seen")
                time.sleep(0.01)
    finally:
        engine.dispose()


def latency(twins: Twins, work: Path, users: int, extra: str) -> dict[str, float]:
    """Moodle's enrol_user latency while postsync applies the enrolments: from
    postsync's first write on, a PHP process enrols, again and again, the users of the
    file's first lines in the course they name (rows postsync has just written)."""
    lab = twins.lab
    site = twins.clone(f"latency{extra and ' (chunks)'}")
    add = "\n".join([HEAD, *enrol_lines(users, "add", ";")]) + "\n"
    root = work / site.name
    (root / "area").mkdir(parents=True, exist_ok=True)
    (root / "area" / "enrols.csv").write_text(add)
    playbook = root / "playbook.yml"
    step = ENROL_STEP.format(extra=extra)
    playbook.write_text(f'name: anchors\narea: area\ndatabase: "{site.url}"\nsync:\n{step}')
    stop = lab.inbox / f"stop-{site.name}"
    stop.unlink(missing_ok=True)
    people = [f"U{u:05d}" for u in range(1, 41)]  # lines 2 to 401: C001 is each one's first
    command, env = lab.php_process(
        script(lab, "enrol_loop.php"), "C001", str(stop), *people, site=site.name
    )
    start = time.perf_counter()
    run = subprocess.Popen(
        [*POSTSYNC, "run", str(playbook)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with tempfile.TemporaryFile("w+") as out:
        first_write(site, time.monotonic() + 120)
        loop = subprocess.Popen(command, cwd=lab.moodle, env=env, stdout=out, text=True)
        _out, err = run.communicate(timeout=1800)
        seconds = time.perf_counter() - start
        if run.returncode not in (0, 2):
            raise SystemExit(f"postsync failed ({run.returncode}): {err[-3000:]}")
        time.sleep(1.0)
        stop.touch()
        loop.wait(timeout=600)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    check_applied(root / "area", users * COURSES)
    found = json.loads(lines[-1])
    times = sorted(found["latencies"])
    return {
        "run": seconds,
        "calls": len(times),
        "errors": found["errors"],
        "median": statistics.median(times),
        "worst": times[-1],
        "over_1s": sum(1 for t in times if t > 1.0),
    }
