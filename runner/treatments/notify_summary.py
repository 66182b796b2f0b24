"""What notify sends: the run's summary (the webhook's JSON body), the mail's text and
its default subject. Each says what happened: the failed steps' messages, the failed
lines' first reasons, where the record and the reports are.

A failed line is told by its number and message only, never its text: a users file's
line may hold a password (its messages never quote one). What is cut short here is
masked first (no piece of a secret left); the caller masks the whole summary
(runner.core.secrets.redact_json) before anything is sent.
"""

from __future__ import annotations

import re
from typing import Any

from runner.core.secrets import redact
from runner.core.text import plural, printable
from runner.record.model import FileOutcome
from runner.step.facts import RunFacts
from runner.step.ledger import Outcomes

#: the failed lines of a control file told by number and message (the report has all)
FIRST_FAILED = 5
#: a failed line's message, at most (in characters)
MESSAGE_LIMIT = 300
#: what the run's headline (`2 steps failed (NAME: MESSAGE)`) holds, at most
HEADLINE_LIMIT = 120
#: the playbook's name and the host's in the default subject, at most each
NAME_LIMIT = 40
#: the default subject, at most
SUBJECT_LIMIT = 200


def summary(run: RunFacts, ledger: Outcomes) -> dict[str, Any]:
    """What the run did so far: its recap, steps and control files, and where its record
    and reports are (for a real run; a preview keeps neither)."""
    statuses = list(ledger.statuses.values())
    record = run.header().record_path
    saved = bool(ledger.files) and not run.check and record.is_file()
    return {
        "run_id": run.run_id,
        "playbook": run.playbook.name,
        "host": run.host,
        "area": str(run.area),
        "record": str(record) if saved else None,
        "check": run.check,
        "started": run.now.isoformat(),
        "failed": ledger.failed,
        "headline": headline(ledger),
        "problems": list(ledger.problems),
        "recap": {
            status: statuses.count(status)
            for status in ("ok", "changed", "warning", "skipped", "failed")
        }
        | {"lines_ok": ledger.lines_ok, "lines_failed": ledger.failed_lines},
        "steps": [
            {"name": name, "status": s.status, "detail": s.detail, "error": s.error}
            for name, s in ledger.steps.items()
        ],
        "control_files": [_file(run, f) for f in ledger.files],
    }


def _file(run: RunFacts, f: FileOutcome) -> dict[str, Any]:
    return {
        "path": run.display(f.path),
        "command": f.command,
        "outcome": f.summary(),
        "report": str(f.report) if f.report is not None and not run.check else None,
        "failed_lines": len(f.failed),
        # each message masked before it is cut: no piece of a secret is left unmasked
        "first_failed_lines": [
            {"line": line.number, "message": _cut(printable(redact(line.message)), MESSAGE_LIMIT)}
            for line in f.failed[:FIRST_FAILED]
        ],
    }


def headline(ledger: Outcomes) -> str:
    """What happened, on one line of at most about HEADLINE_LIMIT characters: `ok`, `12
    lines failed`, `1 step failed (NAME: its message)`, `1 problem (metrics file ...)`
    (outside the steps); a long message keeps its start and its end (where a chained
    error says its cause)."""
    failed = [(name, s) for name, s in ledger.steps.items() if s.status == "failed"]
    lines = f"{plural(ledger.failed_lines, 'line')} failed" if ledger.failed_lines else ""
    if failed:
        name, step = failed[0]
        reason = f"{name}: {step.error}" if step.error else name
        return _told(plural(len(failed), "step") + " failed", len(failed), reason, lines)
    if ledger.problems:
        problems = ledger.problems
        return _told(plural(len(problems), "problem"), len(problems), problems[0], lines)
    return lines or "ok"


def _told(what: str, count: int, reason: str, lines: str) -> str:
    """`WHAT (REASON; and N more), LINES`, the reason masked then cut to fit."""
    more = f"; and {count - 1} more" if count > 1 else ""
    head = f"{what} ("
    tail = f"{more})" + (f", {lines}" if lines else "")
    reason = _one_line(redact(reason))  # masked before it is cut, as a line's message
    return head + _elide(reason, max(HEADLINE_LIMIT - len(head) - len(tail), 30)) + tail


def subject(summary: dict[str, Any]) -> str:
    """The mail's default subject: `postsync NAME on HOST: HEADLINE`, one line of at
    most SUBJECT_LIMIT characters (of a summary masked already)."""
    name = _cut(_one_line(summary["playbook"]), NAME_LIMIT)
    host = _cut(_one_line(summary["host"] or "an unnamed host"), NAME_LIMIT)
    return _cut(f"postsync {name} on {host}: {summary['headline']}", SUBJECT_LIMIT)


def text(summary: dict[str, Any]) -> str:
    """The mail's text."""
    r = summary["recap"]
    lines = [
        f"postsync run {summary['run_id']} of {summary['playbook']} on {summary['host']}:"
        f" {summary['headline']}",
        f"started {summary['started']}, area {summary['area']}"
        + (" (a preview: nothing was changed)" if summary["check"] else ""),
    ]
    if summary["record"]:
        lines.append(f"record: {summary['record']}")
    lines += [
        "",
        f"steps: {r['ok']} ok, {r['changed']} changed, {r['warning']} warning,"
        f" {r['skipped']} skipped, {r['failed']} failed;"
        f" lines: {r['lines_ok']} ok, {r['lines_failed']} failed",
    ]
    lines += [f"FAILED   {problem}  (the run went on)" for problem in summary["problems"]]
    for s in summary["steps"]:
        said = s["error"] or s["detail"]
        lines.append(f"{s['status'].upper():<8} {s['name']}" + (f"  ({said})" if said else ""))
    for f in summary["control_files"]:
        lines += ["", f"{f['path']} ({f['command']}): {f['outcome']}"]
        if f["report"]:
            lines.append(f"  report: {f['report']}")
        lines += [f"  line {x['line']}: {x['message']}" for x in f["first_failed_lines"]]
        more = f["failed_lines"] - len(f["first_failed_lines"])
        if more > 0:
            lines.append(f"  and {plural(more, 'more failed line')}: see the report")
    # a line of the mail per line: a message's line break shown, never followed
    return "\n".join(printable(line) for line in lines) + "\n"


_SPACES = re.compile(r"\s+")


def _one_line(text: str) -> str:
    """`text` on one line: control characters escaped, runs of blanks as one space."""
    return _SPACES.sub(" ", printable(text)).strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _elide(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: its start and its end, ` ... ` between,
    cut between words where the words are short enough."""
    if len(text) <= limit:
        return text
    room = limit - 5
    head = text[: room // 3]
    tail = text[len(text) - (room - len(head)) :]
    cut = head.rfind(" ")
    if cut > len(head) // 2:
        head = head[:cut]
    cut = tail.find(" ")
    if 0 <= cut < len(tail) // 2:
        tail = tail[cut + 1 :]
    return f"{head} ... {tail}"
