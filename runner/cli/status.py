"""`postsync status AREA`: each playbook's last run of the area, for health checks and
monitoring (runner.record.status); exits non-zero when one failed or is stale."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from runner.core.errors import Exit, UsageError
from runner.core.text import plural, printable
from runner.record.status import LastRun, StatusError, load_status


def _age(entry: LastRun, now: float) -> float:
    return max(now - entry.finished_at.timestamp(), 0.0)


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


def _verdict(entry: LastRun, now: float, max_age: float) -> str:
    """ok, failed (the run did not complete: exit neither 0 nor 2) or stale."""
    if entry.exit_code not in (Exit.OK, Exit.LINES_FAILED):
        return "failed"
    return "stale" if _age(entry, now) > max_age else "ok"


def _line(entry: LastRun, verdict: str, now: float) -> str:
    finished = datetime.fromisoformat(entry.finished)
    what = [f"exit {entry.exit_code}"]
    if entry.lines_failed:
        what.append(plural(entry.lines_failed, "line") + " failed")
    if entry.steps_failed:
        what.append("failed: " + ", ".join(entry.steps_failed[:3]))
    what += [f"FAILED {problem}" for problem in entry.problems[:3]]
    if entry.interrupted:
        what.append("interrupted")
    if entry.partial:
        what.append("some steps only (--tags)")
    return printable(
        f"{verdict.upper():<8} {entry.name} ({entry.playbook}): last run {entry.run_id},"
        f" finished {finished:%Y-%m-%d %H:%M %z}, {_hours(_age(entry, now))} ago;"
        f" {', '.join(what)}"
    )


def cmd_status(args: argparse.Namespace) -> int:
    area: Path = args.area
    if not area.is_dir():
        raise UsageError(f"{area} is not a directory (the area a playbook's `area:` names)")
    if not args.max_age_hours > 0:
        raise UsageError("--max-age-hours must be more than 0")
    max_age = args.max_age_hours * 3600
    now = time.time()
    try:
        entries = load_status(area.resolve() / ".postsync")
    except StatusError as exc:
        print(f"postsync: {exc}", file=sys.stderr)
        return int(Exit.STALE)
    verdicts = [(e, _verdict(e, now, max_age)) for e in sorted(entries, key=lambda e: e.playbook)]
    if args.output == "json":
        document = {
            "area": str(area),
            "max_age_hours": args.max_age_hours,
            "playbooks": [
                {**_json(e), "verdict": v, "age_seconds": round(_age(e, now))} for e, v in verdicts
            ],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    elif not verdicts:
        print(f"STALE    no run of {area} recorded (a preview records none)")
    for entry, verdict in verdicts if args.output != "json" else []:
        print(_line(entry, verdict, now))
    found = {v for _e, v in verdicts}
    if "failed" in found:
        return int(Exit.STEP_FAILED)
    if "stale" in found or not verdicts:
        return int(Exit.STALE)
    return int(Exit.OK)


def _json(entry: LastRun) -> dict[str, object]:
    from dataclasses import asdict

    document = asdict(entry)
    document["steps_failed"] = list(entry.steps_failed)
    document["problems"] = list(entry.problems)
    return document
