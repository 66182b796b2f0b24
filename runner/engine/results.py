"""What a run is asked for (options, tag selection) and what it returns (results), and the
reporter that prints it as it goes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from runner.core.errors import Exit, UsageError
from runner.playbook.model import Step
from runner.step.context import Run
from runner.step.protocol import Done


@dataclass(frozen=True)
class RunOptions:
    check: bool = False
    diff: bool = False
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    lock_wait: float = 0.0
    #: --full-reconcile (runner.sync.diffing)
    full_reconcile: bool = False
    #: what the caller found wrong outside the steps before the run (a --metrics-file
    #: that cannot be written): the run goes on, tells of them and exits 3
    problems: tuple[str, ...] = ()


@dataclass
class StepResult:
    step: Step
    name: str = ""  # the step's name, rendered
    #: ok | changed | skipped | failed, or warning: a sync step that changed nothing and
    #: whose lines failed
    status: str = "ok"
    detail: str = ""
    items: list[Done] = field(default_factory=list)
    error: str | None = None
    #: when the step started (the run's zone), and how long it took
    started: datetime | None = None
    duration_s: float = 0.0

    #: a failure that leaves the rest of the run to go on (control files rejected
    #: by a sync step, the others applied); the run still exits 3
    goes_on: bool = False

    @property
    def ignored(self) -> bool:
        return self.status == "failed" and self.step.ignore_errors

    @property
    def stops_the_run(self) -> bool:
        return self.status == "failed" and not self.ignored and not self.goes_on


@dataclass
class RunResult:
    run: Run
    steps: list[StepResult] = field(default_factory=list)
    interrupted: bool = False
    #: the exit code of the interruption: 130 (SIGINT) or 143 (SIGTERM)
    interruption: Exit = Exit.INTERRUPTED
    record: Path | None = None
    #: the record could not be saved at the end of the run (the run failed)
    record_error: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def exit_code(self) -> Exit:
        if self.interrupted:
            return self.interruption
        if (
            self.record_error
            or self.run.ledger.problems
            or any(s.status == "failed" and not s.ignored for s in self.steps)
        ):
            return Exit.STEP_FAILED
        if self.run.ledger.failed_lines:
            return Exit.LINES_FAILED
        return Exit.OK


class Reporter(Protocol):
    def start(self, run: Run) -> None: ...
    def step_started(self, result: StepResult) -> None: ...
    def item(self, result: StepResult, done: Done) -> None: ...
    def progress(self, result: StepResult, done: int, total: int, what: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def finish(self, result: RunResult) -> None: ...


def check_tags(steps: Sequence[Step], only: frozenset[str], skip: frozenset[str]) -> None:
    """UsageError (exit 5) for a --tags/--skip-tags name no step has: a misspelt tag
    in a cron line would otherwise select nothing, silently."""
    known = {tag for step in steps for tag in step.tags}
    unknown = sorted((only | skip) - known - {"all", "always", "never"})
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise UsageError(
            f"no step has the tag{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
            f" (the playbook's tags: {listed}; also all, always, never)"
        )


def selected(tags: Sequence[str], only: frozenset[str], skip: frozenset[str]) -> bool:
    """Ansible's tag rules: `always` runs unless skipped, `never` only when asked for."""
    own = set(tags)
    if own & skip or ("all" in skip):
        return False
    if "never" in own and not (own - {"never"}) & only and "never" not in only:
        return False
    if not only or "all" in only or "always" in own:
        return True
    return bool(own & only)
