"""What users see: text lines, one JSON document, or JSON lines as things happen."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from runner.core.errors import PlaybookError, PostsyncError
from runner.core.secrets import redact, redact_json
from runner.core.text import plural, printable
from runner.engine.results import RunResult, StepResult
from runner.record.model import FileOutcome
from runner.step.context import Run
from runner.step.protocol import Done

PREVIEW_BANNER = "PREVIEW  --check: nothing is changed; the lines below are what the run would do"
_COLOURS = {"ok": "32", "changed": "33", "skipped": "36", "failed": "31"}


def use_colour(stream: IO[str]) -> bool:
    """Colour on a terminal; never with a non-empty NO_COLOR (no-color.org); always with
    a non-empty FORCE_COLOR other than 0 (a CI log that shows colours), NO_COLOR first."""
    if os.environ.get("NO_COLOR", ""):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    return _is_terminal(stream)


class ProgressLine:
    """One self-overwriting line on stderr for a step that takes a while, only when
    stderr is a terminal (never in a log, a pipe or a JSON mode): `done/total` as a bar,
    redrawn at most ten times a second, from `delay` seconds into the step."""

    def __init__(self, stream: IO[str] | None = None, *, delay: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.enabled = _is_terminal(self.stream) and os.environ.get("TERM") != "dumb"
        self.delay = delay
        self.started = 0.0
        self.drawn = 0.0
        self.shown = False

    def start(self) -> None:
        self.started = time.monotonic()
        self.drawn = 0.0

    def update(self, label: str, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.started < self.delay or now - self.drawn < 0.1:
            return
        self.drawn = now
        share = min(done / total, 1.0) if total > 0 else 0.0
        bar = "#" * int(share * 20)
        text = f"{label}  [{bar:<20}] {share:4.0%}  {what}"
        width = max(shutil.get_terminal_size().columns - 1, 20)
        self._write("\r" + text[:width] + "\033[K")
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self._write("\r\033[K")
            self.shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def item_text(done: Done) -> str:
    action = done.action
    detail = ", ".join(x for x in (action.detail, done.note) if x)
    verb = action.verb.replace("_", " ")
    return f"{verb} {printable(action.target)}" + (f"  ({printable(detail)})" if detail else "")


def item_json(done: Done) -> dict[str, Any]:
    detail = ", ".join(x for x in (done.action.detail, done.note) if x)
    return {
        "action": done.action.verb,
        "target": printable(done.action.target),
        "detail": printable(detail),
    }


def cleaned_json(run: Run) -> list[dict[str, str]]:
    """What a killed run left and this one removed (runner.engine.leftovers)."""
    return [
        {"action": "remove", "target": printable(target), "detail": detail}
        for target, detail in run.ledger.cleaned
    ]


def recap(result: RunResult) -> dict[str, int]:
    return {
        "ok": result.count("ok"),
        "changed": result.count("changed"),
        "skipped": result.count("skipped"),
        "failed": result.count("failed"),
        "ignored": sum(1 for s in result.steps if s.ignored),
        "lines_ok": result.run.ledger.lines_ok,
        "lines_failed": result.run.ledger.failed_lines,
    }


def step_json(result: StepResult) -> dict[str, Any]:
    return {
        "name": printable(result.name),
        "kind": result.step.kind,
        "section": result.step.section,
        "status": result.status,
        "ignored": result.ignored,
        "detail": printable(result.error or result.detail),
        "started": result.started.isoformat() if result.started else None,
        "duration_s": result.duration_s,
        "items": [item_json(d) for d in result.items],
    }


def problems_json(error: PostsyncError) -> list[dict[str, Any]]:
    if isinstance(error, PlaybookError):
        return [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "path": p.path,
                "message": p.message,
            }
            for p in error.problems
        ]
    return [{"message": str(error)}]


#: syslog priorities journald reads from a line's `<N>` prefix
ERR, WARNING, INFO = 3, 4, 6


def to_journal(stream: IO[str]) -> bool:
    """Whether `stream` is systemd's journal stream (JOURNAL_STREAM names its device
    and inode): then each line carries its syslog priority, as `<3>`."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class TextReporter:
    def __init__(
        self, out: IO[str] | None = None, *, diff: bool = False, verbosity: int = 0
    ) -> None:
        self.out = out or sys.stdout
        self.closed = False
        self.diff = diff
        #: -1 (-q): only failures and the recap; 1 (-v): each control-file line too
        self.verbosity = verbosity
        self.colour = use_colour(self.out)
        self.journal = to_journal(self.out)
        self.progress_line = ProgressLine()
        self.run: Run | None = None
        self._files_before = 0

    def write(self, text: str, priority: int = INFO) -> None:
        """Print a line (or lines), flushed; a reader that went away (a closed pipe)
        never stops the run. On the journal, each line with its priority."""
        self._put(redact(text), priority)

    def _put(self, text: str, priority: int = INFO) -> None:
        """Print `text`, already redacted."""
        if self.closed:
            return
        if self.journal:
            text = "\n".join(f"<{priority}>{line}" for line in text.split("\n"))
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            self.closed = True

    def _status(self, status: str) -> str:
        word = f"{status.upper():<8}"
        return f"\033[{_COLOURS[status]}m{word}\033[0m" if self.colour else word

    def start(self, run: Run) -> None:
        self.run = run
        if run.facts.check:
            self.write(PREVIEW_BANNER)
        cleaned = run.ledger.cleaned
        if cleaned and self.verbosity >= 0:
            lines = [f"CLEANUP  {plural(len(cleaned), 'leftover')} of a killed run"]
            lines += [f"    remove {printable(t)}  ({d})" for t, d in cleaned]
            self.write("\n".join(lines))
        for problem in run.ledger.problems:
            self.write(f"{self._status('failed')} {printable(problem)}  (the run goes on)", ERR)

    def step_started(self, result: StepResult) -> None:
        self._files_before = self.run.ledger.file_count if self.run is not None else 0
        self.progress_line.start()

    def item(self, result: StepResult, done: Done) -> None:
        pass

    def progress(self, result: StepResult, done: int, total: int, what: str) -> None:
        self.progress_line.update(result.name, done, total, what)

    def step_finished(self, result: StepResult) -> None:
        self.progress_line.clear()
        failed = result.status == "failed"
        if self.verbosity < 0 and not failed:
            return  # -q
        detail = result.error or result.detail
        if result.ignored:
            detail += " (ignored)"
        line = f"{self._status(result.status)} {printable(result.name)}"
        lines = [line + (f"  ({printable(detail)})" if detail else "")]
        for done in result.items:
            lines.append(f"    {item_text(done)}")
            if self.diff and done.action.diff:
                lines.append(done.action.diff.rstrip("\n"))
        # one write for the step: a step of 30,000 items flushed line by line to a file
        # or a pipe costs more than the step's own work
        self.write("\n".join(lines), ERR if failed and not result.ignored else INFO)
        if self.verbosity > 0 and self.run is not None:
            self._lines(self.run.ledger.files[self._files_before :])

    def _lines(self, outcomes: Sequence[FileOutcome]) -> None:
        """-v: each line's outcome, from the control files' reports."""
        for outcome in outcomes:
            report = outcome.report
            if report is None or not report.is_file():
                continue
            # "\n" only ends a line: a value's CR is shown escaped, never as a line
            with open(report, encoding="utf-8", errors="replace", newline="\n") as lines:
                for text in lines:
                    text = printable(text.rstrip("\n"))
                    self.write(f"        {text}", WARNING if ": failed: " in text else INFO)

    def finish(self, result: RunResult) -> None:
        r = recap(result)
        line = (
            f"RECAP ok={r['ok']} changed={r['changed']} skipped={r['skipped']}"
            f" failed={r['failed']} | lines: {r['lines_ok']} ok, {r['lines_failed']} failed"
        )
        if result.record_error:
            self.write(f"{self._status('failed')} run record  ({result.record_error})", ERR)
        if result.run.facts.check:
            line += "  (preview: nothing changed)"
        if result.interrupted:
            line += "  (interrupted)"
        code = result.exit_code
        self.write(line, INFO if code == 0 else WARNING if code == 2 else ERR)
        # what recovery needs: `postsync post RECORD` re-runs the post-treatments
        if result.record is not None:
            self.write(f"RECORD   {printable(str(result.record))}  (run {result.run.facts.run_id})")

    def abort(self, error: PostsyncError, check: bool) -> None:
        pass


class JsonReporter(TextReporter):
    """One document at the end (`--output json`)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        super().__init__(out)
        self.progress_line.enabled = False  # a JSON mode is for programs
        self.journal = False  # and its lines are JSON, on the journal too

    def start(self, run: Run) -> None:
        self.run = run

    def _json(self, document: dict[str, Any], indent: int | None = None) -> None:
        """Print a JSON document, its string values redacted (never its text: a secret
        that is also `true` or a number would break it)."""
        self._put(json.dumps(redact_json(document), indent=indent, ensure_ascii=False))

    def step_finished(self, result: StepResult) -> None:
        pass

    def document(self, result: RunResult) -> dict[str, Any]:
        run = result.run.facts
        return {
            "run_id": run.run_id,
            "playbook": str(run.playbook.file),
            "name": run.playbook.name,
            "check": run.check,
            "started": run.now.isoformat(),
            "finished": datetime.now(run.now.tzinfo).isoformat(),
            "exit_code": int(result.exit_code),
            "interrupted": result.interrupted,
            "recap": recap(result),
            "record_error": result.record_error,
            "problems": list(result.run.ledger.problems),
            "cleaned": cleaned_json(result.run),
            "steps": [step_json(s) for s in result.steps],
        }

    def finish(self, result: RunResult) -> None:
        self._json(self.document(result), indent=2)

    def abort(self, error: PostsyncError, check: bool) -> None:
        doc = {
            "run_id": None,
            "check": check,
            "exit_code": int(error.exit_code),
            "errors": problems_json(error),
        }
        self._json(doc, indent=2)


class JsonlReporter(JsonReporter):
    """One JSON event per line as things happen (`--output jsonl`)."""

    def _emit(self, event: str, **fields: Any) -> None:
        """One event line, with the time it happened (the run's zone)."""
        zone = self.run.facts.zone if self.run is not None else None
        stamp = (
            datetime.now(zone) if zone is not None else datetime.now().astimezone()
        ).isoformat()
        self._json({"event": event, "time": stamp, **fields})

    def start(self, run: Run) -> None:
        self.run = run
        self._emit(
            "start",
            run_id=run.facts.run_id,
            playbook=str(run.facts.playbook.file),
            name=run.facts.playbook.name,
            check=run.facts.check,
            started=run.facts.now.isoformat(),
            cleaned=cleaned_json(run),
            problems=list(run.ledger.problems),
        )

    def step_started(self, result: StepResult) -> None:
        step = result.step
        self._emit("step_start", name=result.name, kind=step.kind, section=step.section)

    def item(self, result: StepResult, done: Done) -> None:
        self._emit("item", step=result.name, **item_json(done))

    def step_finished(self, result: StepResult) -> None:
        self._emit("step", **step_json(result))

    def finish(self, result: RunResult) -> None:
        self._emit(
            "end",
            run_id=result.run.facts.run_id,
            check=result.run.facts.check,
            exit_code=int(result.exit_code),
            interrupted=result.interrupted,
            recap=recap(result),
        )

    def abort(self, error: PostsyncError, check: bool) -> None:
        self._emit(
            "end",
            run_id=None,
            check=check,
            exit_code=int(error.exit_code),
            errors=problems_json(error),
        )


def make_reporter(kind: str, *, diff: bool = False, verbosity: int = 0) -> TextReporter:
    if kind == "json":
        return JsonReporter()
    if kind == "jsonl":
        return JsonlReporter()
    return TextReporter(diff=diff, verbosity=verbosity)
