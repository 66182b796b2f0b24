"""Output for programs: one JSON document at the end (`--output json`), or one JSON event
per line as things happen (`--output jsonl`); both as schemas/output.schema.json says."""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from runner.cli.terminal import Printer
from runner.core import secrets
from runner.core.errors import PlaybookError, PostsyncError
from runner.core.text import printable
from runner.engine.results import RunResult, StepResult
from runner.step.context import Run
from runner.step.protocol import Done


def recap(result: RunResult) -> dict[str, int]:
    """The run's figures: its steps by status, and its control-file lines."""
    return {
        "ok": result.count("ok"),
        "changed": result.count("changed"),
        "warning": result.count("warning"),
        "skipped": result.count("skipped"),
        "failed": result.count("failed"),
        "ignored": sum(1 for s in result.steps if s.ignored),
        "lines_ok": result.run.ledger.lines_ok,
        "lines_failed": result.run.ledger.failed_lines,
    }


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


class JsonReporter(Printer):
    """One document at the end (`--output json`)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        super().__init__(out)
        self.journal = False  # its lines are JSON, on the journal too
        self.run: Run | None = None

    def _json(self, document: dict[str, Any], indent: int | None = None) -> None:
        """Print a JSON document, its string values redacted (never its text: a secret
        that is also `true` or a number would break it)."""
        self.put(secrets.dumps(document, indent=indent, ensure_ascii=False))

    def start(self, run: Run) -> None:
        self.run = run

    def step_started(self, result: StepResult) -> None:
        pass

    def item(self, result: StepResult, done: Done) -> None:
        pass

    def progress(self, result: StepResult, done: int, total: int, what: str) -> None:
        pass  # a JSON mode is for programs: no progress line

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
