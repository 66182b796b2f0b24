"""Plan then apply: prepare every step (nothing changed yet), lock, run, record, recap."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.core import faults
from runner.core.errors import (
    FilesRejected,
    PlaybookError,
    StepError,
    database_reason,
    interruption_exit,
)
from runner.core.interpreter import paused_collector
from runner.engine import leftovers
from runner.engine.lock import area_lock, runs_dir
from runner.engine.prepare import build_context, evaluate_when, prepare
from runner.engine.results import (
    Reporter,
    RunOptions,
    RunResult,
    StepResult,
    check_tags,
    selected,
)
from runner.playbook import registry
from runner.playbook.model import Playbook, Step
from runner.record.status import LastRun, save_status
from runner.record.store import prune_records, save_record
from runner.step.context import Run
from runner.step.facts import file_context
from runner.step.protocol import Done, Plan
from runner.storage.temporaries import journal
from runner.sync import recover, retried
from runner.sync import step as sync_step
from runner.treatments import TREATMENTS


def _configure(run: Run, step: Step, result: StepResult) -> Any:
    """The treatment's configuration; for a per-file treatment, one per control file
    (those for which `when` holds), as (FileOutcome, config) pairs."""
    treatment = TREATMENTS[step.kind]
    if not registry.TREATMENTS[step.kind].per_file:
        return treatment.configure(step.params, run.scope(step))
    configs = []
    dirs: dict[str, str] = {}
    base = run.template_context()
    files = run.ledger.files
    for outcome in files:
        extra = {"file": file_context(outcome.path, outcome.command)}
        scope = run.scope(step, extra, dirs, base)
        if evaluate_when(step, scope):
            configs.append((outcome, treatment.configure(step.params, scope)))
    if files and not configs:
        result.detail = f"when: {step.when} is false for every control file"
    return configs


def _run_treatment(run: Run, step: Step, result: StepResult, reporter: Reporter) -> None:
    treatment = TREATMENTS[step.kind]
    config = _configure(run, step, result)
    if result.detail:
        result.status = "skipped"
        return
    plan: Plan = treatment.plan(config, run.facts, run.ledger, run.services)
    result.detail = plan.summary
    if plan.skip_reason is not None:
        result.status, result.detail = "skipped", plan.skip_reason
        return
    if plan.actions:
        result.status = "changed"
    if run.facts.check:
        for item in (Done(a) for a in plan.actions):
            result.items.append(item)
            reporter.item(result, item)
    elif plan.actions:
        applied: dict[int, Done] = {}
        try:
            total = len(plan.actions)
            for item in treatment.apply(plan.actions, run.facts, run.ledger, run.services):
                applied[id(item.action)] = item
                reporter.item(result, item)
                reporter.progress(result, len(applied), total, "")  # shown as done/total
        finally:
            # items in plan order, so the run prints what the preview printed
            result.items = [applied[id(a)] for a in plan.actions if id(a) in applied]
    if plan.errors:
        more = f" (and {len(plan.errors) - 3} more)" if len(plan.errors) > 3 else ""
        raise StepError("; ".join(plan.errors[:3]) + more)


def _run_sync(run: Run, step: Step, result: StepResult, reporter: Reporter) -> None:
    config = sync_step.configure(step.params, run.scope(step))
    # `postsync retry`: the failed lines of a saved run, instead of the listed files
    apply = sync_step.run if run.facts.retry is None else retried.run

    def emit(done: Done) -> None:
        result.items.append(done)
        reporter.item(result, done)

    def progress(done: int, total: int, what: str) -> None:
        reporter.progress(result, done, total, what)

    result.status, result.detail = apply(
        config, run.facts, run.ledger, run.services, emit, progress
    )


def execute_step(run: Run, result: StepResult, reporter: Reporter) -> None:
    step = result.step
    result.name = step.name
    with contextlib.suppress(PlaybookError):  # `prepare` rendered it already
        result.name = run.facts.renderer.render(
            step.name, run.template_context(), (*step.item_path, "name")
        )
    result.started = datetime.now(run.facts.zone)
    clock = time.monotonic()
    reporter.step_started(result)
    try:
        if why := _not_in_retry(run, step):
            result.status, result.detail = "skipped", why
        elif not registry.per_file(step.section, step.kind) and not evaluate_when(
            step, run.scope(step)
        ):
            result.status, result.detail = "skipped", f"when: {step.when} is false"
        elif step.section == "post_treatments":
            with paused_collector():  # a step's thousands of rows, actions, lines
                _run_treatment(run, step, result, reporter)
        else:
            _run_sync(run, step, result, reporter)
    except (StepError, PlaybookError) as exc:
        result.status, result.error = "failed", str(exc)
        result.goes_on = isinstance(exc, FilesRejected)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        result.status, result.error = "failed", f"{exc.strerror or exc}{where}"
    except KeyboardInterrupt:
        result.status, result.error = "failed", "interrupted"
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy"):
            raise
        reason = database_reason(exc)
        result.status, result.error = "failed", f"database error: {reason}"
    finally:
        run.ledger.end_step(result.name, result.status, result.detail, result.error)
        result.duration_s = round(time.monotonic() - clock, 3)


def _not_in_retry(run: Run, step: Step) -> str:
    """Why a post-treatment does not run for a retry (`postsync retry`, or `post` of a
    retry's record), or ''."""
    retry = run.facts.retry
    if (
        retry is None
        or step.section != "post_treatments"
        or registry.TREATMENTS[step.kind].in_retry
    ):
        return ""
    return f"not run for a retry: it acts on run {retry.run_id}'s files, courses or area"


def run_playbook(playbook: Playbook, options: RunOptions, reporter: Reporter) -> RunResult:
    check_tags(playbook.steps, options.tags, options.skip_tags)
    run = build_context(playbook, options)
    steps = [s for s in playbook.steps if selected(s.tags, options.tags, options.skip_tags)]
    return execute_steps(run, steps, options, reporter)


def _check_area(run: Run) -> None:
    area = run.facts.area
    if not area.is_dir():
        raise StepError(
            f"area {area} does not exist or is not a directory;"
            " create it or fix `area:` in the playbook"
        )


#: the treatments that run after a step failed and stopped the run (they tell of it)
RUNS_AFTER_FAILURE = frozenset({"notify"})


def execute_steps(
    run: Run, steps: Sequence[Step], options: RunOptions, reporter: Reporter
) -> RunResult:
    prepare(run, steps)
    _check_area(run)
    result = RunResult(run)
    try:
        _locked(run, steps, options, reporter, result)
    finally:
        run.close()  # the one place a run's services are closed
    return result


def _locked(
    run: Run, steps: Sequence[Step], options: RunOptions, reporter: Reporter, result: RunResult
) -> None:
    facts = run.facts
    # a preview writes nothing: a shared lock if the lock file exists, no directory
    # made, no record saved, none pruned (runner.engine.lock)
    with area_lock(facts.area, facts.run_id, options.lock_wait, shared=facts.check):
        runs_dir(facts.area, create=not facts.check)
        _clean_leftovers(run)
        for problem in options.problems:
            run.ledger.add_problem(problem)
        reporter.start(run)
        # a run of some steps only (--tags) leaves the files it applied marked: the
        # steps it skipped (delete_control_files...) may still be to run
        every = not options.tags and not options.skip_tags
        with journal(None if facts.check else leftovers.journal_path(facts)):
            _run_steps(run, steps, result, reporter, every=every)
        reporter.finish(result)


def _forget_applied(run: Run) -> None:
    """The run ended: the markers of the files it applied (or took from a killed run)
    are removed. Left in place when the database cannot be reached: the next run finds
    them stale (this run's record is finished)."""
    facts, recovery = run.facts, run.ledger.recovery
    if not (recovery.loaded or run.ledger.files) or facts.database_url is None:
        return
    from sqlalchemy.exc import SQLAlchemyError  # a run without a database does without

    from runner.db import applied

    with contextlib.suppress(StepError, SQLAlchemyError):
        engine, _tables = run.services.database()
        applied.remove(
            engine,
            facts.area,
            ids=recovery.done(),
            run_id=facts.run_id,
            keep=recovery.unfinished,
        )
        faults.point("applied.removed")


def _clean_leftovers(run: Run) -> None:
    """Remove what a killed run of the area left (a preview: finds it, removes nothing);
    the reporter tells of it."""
    facts = run.facts
    found = leftovers.find(facts)
    orphans = {f.path.name for f in found.found if f.run_dir}
    if orphans:
        # a run killed before its first record, after a file's commit: that file's
        # report is copied by this run's sync (runner.step.recovery), so it stays
        needed = _runs_with_applied_files(run, orphans)
        found.found = [f for f in found.found if not (f.run_dir and f.path.name in needed)]
    done = found.found if facts.check else leftovers.remove(found, facts)
    run.ledger.set_cleaned((facts.display(f.path), f.detail) for f in done)


def _runs_with_applied_files(run: Run, runs: set[str]) -> set[str]:
    """Of these runs, those whose applied files are still marked (all of them when the
    database cannot tell)."""
    if run.facts.database_url is None:
        return set()
    from sqlalchemy.exc import SQLAlchemyError

    recovery = run.ledger.recovery
    try:
        engine, _tables = run.services.database()
        recover.load(run.facts, recovery, engine)
    except (StepError, SQLAlchemyError):
        return runs
    return {m.run_id for m in recovery.pending.values()} & runs


def _run_steps(
    run: Run, steps: Sequence[Step], result: RunResult, reporter: Reporter, *, every: bool
) -> None:
    """The steps in order, then (a real run) the record saved, the run's markers of
    applied files removed when every step of the playbook ran (`every`: none left out
    by tags), and old records pruned."""
    stopped = False
    syncs = [i for i, s in enumerate(steps) if s.section == "sync"]
    # `post` runs after a sync that finished; a run without sync steps has none to do
    facts, ledger = run.facts, run.ledger
    ledger.set_sync_complete(ledger.sync_complete or not syncs)
    try:
        for index, step in enumerate(steps):
            if stopped and step.kind not in RUNS_AFTER_FAILURE:
                continue
            step_result = StepResult(step)
            result.steps.append(step_result)
            execute_step(run, step_result, reporter)
            if step.section == "sync":
                # the sync is done when its last step ran and did not stop the run
                # (a file it rejected is left, and the run goes on without it)
                ledger.set_sync_complete(index == syncs[-1] and not step_result.stops_the_run)
                if ledger.files and not facts.check:
                    # the boundary: post-treatments can be re-run from this record
                    _save_record(run, result, step_result)
            reporter.step_finished(step_result)
            faults.point("step.done")
            # a failed step stops the run: only its notifications still go
            stopped = stopped or step_result.stops_the_run
    except KeyboardInterrupt as exc:
        result.interrupted = True
        result.interruption = interruption_exit(exc)
        if result.steps:
            reporter.step_finished(result.steps[-1])
    # every step ran: the files it applied are post-treated (their markers go)
    complete = every and not stopped and not result.interrupted
    if not facts.check:
        if ledger.files:
            result.record = _save_record(run, result, None, complete=complete)
        if complete and (result.record is not None or not ledger.files):
            _forget_applied(run)
        prune_records(facts.runs_dir, facts.playbook.keep_records_days, keep=facts.run_id)
        _save_status(run, result, partial=not every)


def _save_status(run: Run, result: RunResult, *, partial: bool) -> None:
    """The playbook's last run, for `postsync status AREA`; a failure fails the run."""
    facts, ledger = run.facts, run.ledger
    entry = LastRun(
        playbook=str(facts.playbook.file),
        name=facts.playbook.name,
        run_id=facts.run_id,
        started=facts.now.isoformat(),
        finished=datetime.now(facts.zone).isoformat(),
        exit_code=int(result.exit_code),
        interrupted=result.interrupted,
        partial=partial,
        lines_ok=ledger.lines_ok,
        lines_failed=ledger.failed_lines,
        steps_failed=tuple(s.name for s in result.steps if s.status == "failed" and not s.ignored),
        record=str(result.record) if result.record is not None else None,
        problems=tuple(ledger.problems),
    )
    try:
        save_status(facts.state_dir, entry)
    except OSError as exc:
        result.record_error = result.record_error or (
            f"cannot save the area's status: {exc.strerror or exc}"
        )


def _save_record(
    run: Run, result: RunResult, step: StepResult | None, *, complete: bool | None = None
) -> Path | None:
    """Save the run record; a failure (a full disk) fails the step, or the run."""
    steps = [*run.facts.prior_steps] + [
        {
            "name": s.name,
            "kind": s.step.kind,
            "section": s.step.section,
            "status": s.status,
            "detail": s.error or s.detail,
        }
        for s in result.steps
    ]
    try:
        retry = run.facts.retry
        path = save_record(
            run.facts.header(),
            run.ledger.files,
            steps,
            finished=complete is not None,
            sync_complete=run.ledger.sync_complete,
            complete=bool(complete),
            stored=run.ledger.stored,
            retries=None if retry is None else retry.run_id,
        )
    except OSError as exc:
        error = f"cannot save the run record: {exc.strerror or exc}"
        if step is not None and step.status != "failed":
            step.status, step.error = "failed", error
            # what the notifications after it tell
            run.ledger.end_step(step.name, step.status, step.detail, step.error)
        else:
            result.record_error = error
        return None
    faults.point("record.saved")
    return path
