"""`postsync retry RECORD`: the failed lines of a saved run, applied again once the site
is fixed, as a run of their own (plan then apply, preview, lock, record, exit codes).

Each control file's failed lines go through the sync step that applied it (the record
names it), byte for byte as the sync read them (runner.sync.retried). The post-treatments
run for the retried lines as for a run's files (a report of them, a retry file of those
still failing), but for those the registry keeps out of a retry (`in_retry`): the control
files are the retried run's, archived and deleted by it, never again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from runner.core.errors import PlaybookError, Problem
from runner.engine.execute import execute_steps
from runner.engine.post import saved_run
from runner.engine.results import Reporter, RunOptions, RunResult, selected
from runner.playbook.model import Playbook
from runner.record.lineage import RetryOf
from runner.record.model import FileOutcome
from runner.record.store import LoadedRecord
from runner.step.context import Run
from runner.sync import step as sync_step


def _steps_of(
    record: LoadedRecord, playbook: Playbook, run: Run, files: Sequence[FileOutcome]
) -> dict[str, tuple[FileOutcome, ...]]:
    """The control files with failed lines, by the key of the sync step that applied
    each (a record of an older postsync names none: the first step of the file's
    command whose glob reads it); a file no step of the playbook applies is an error."""
    keys = {f"{step.kind} {step.params['file']}": step for step in playbook.sync}
    counts = Counter(f"{step.kind} {step.params['file']}" for step in playbook.sync)
    globs = {}
    by_step: dict[str, list[FileOutcome]] = {}
    problems: list[Problem] = []
    for i, outcome in enumerate(files):
        if outcome.error or not outcome.failed:
            continue
        key = outcome.step
        if not key:
            for step in playbook.sync:
                if step.kind == outcome.command:
                    if step.label not in globs:
                        globs[step.label] = sync_step.configure(step.params, run.scope(step)).glob
                    if globs[step.label].matches(str(outcome.path)):
                        key = f"{step.kind} {step.params['file']}"
                        break
        if key not in keys or keys[key].kind != outcome.command:
            problems.append(
                record.problem(
                    f"control_files.{i}.step",
                    f"no sync step of {playbook.file} is the one that applied {outcome.path}"
                    f" ({key or outcome.command}): give the playbook of that run with"
                    " --playbook",
                )
            )
            continue
        if counts[key] > 1:
            problems.append(
                record.problem(
                    f"control_files.{i}.step",
                    f"{counts[key]} sync steps of {playbook.file} are `{key}`: which one"
                    f" applied {outcome.path} cannot be told (give each its own file pattern)",
                )
            )
            continue
        by_step.setdefault(key, []).append(outcome)
    if problems:
        raise PlaybookError(problems[:10])
    return {key: tuple(outcomes) for key, outcomes in by_step.items()}


def run_retry(
    record_file: Path,
    options: RunOptions,
    reporter: Reporter,
    playbook_file: Path | None = None,
) -> RunResult:
    """Apply again the failed lines of the run a saved record is of (`postsync retry
    RECORD`), as a new run whose record names that one (`retries`)."""
    record, playbook, run, files = saved_run(
        record_file,
        options,
        playbook_file,
        previewed="this record is from a --check run: its lines were previewed, never"
        " applied; retry the record of a real run",
        unfinished="the run that saved this record did not finish its sync steps (it was"
        " killed, interrupted, or a failed step stopped it): its failed lines are not all"
        " known. Run the playbook again first (the files that run applied are not"
        " applied twice), then retry the record of that run",
        same_run=False,
    )
    retry = RetryOf(
        record.data["run_id"],
        datetime.fromisoformat(record.data["started"]),
        _steps_of(record, playbook, run, files),
    )
    run.facts = replace(run.facts, retry=retry)
    steps = [s for s in playbook.steps if selected(s.tags, options.tags, options.skip_tags)]
    return execute_steps(run, steps, options, reporter)
