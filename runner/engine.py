"""Plan then apply: load, prepare every step (nothing changed yet), lock, run, recap."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runner import faults
from runner.context import RunContext, StepScope, file_context
from runner.errors import Exit, PlaybookError, Problem, StepError
from runner.lock import area_lock
from runner.paths import resolve_under
from runner.playbook import Playbook, Step
from runner.record import prune_records, save_record
from runner.references import check_references
from runner.remote import Storage, is_remote, storage_options
from runner.remote import parse as parse_remote
from runner.sync import step as sync_step
from runner.templating import Renderer
from runner.treatments import TREATMENTS
from runner.treatments.base import Done, Plan


@dataclass(frozen=True)
class RunOptions:
    check: bool = False
    diff: bool = False
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    lock_wait: float = 0.0


@dataclass
class StepResult:
    step: Step
    name: str = ""  # the step's name, rendered
    status: str = "ok"  # ok | changed | skipped | failed
    detail: str = ""
    items: list[Done] = field(default_factory=list)
    error: str | None = None

    @property
    def ignored(self) -> bool:
        return self.status == "failed" and self.step.ignore_errors


@dataclass
class RunResult:
    run: RunContext
    steps: list[StepResult] = field(default_factory=list)
    interrupted: bool = False
    record: Path | None = None
    #: the record could not be saved at the end of the run (the run failed)
    record_error: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def exit_code(self) -> Exit:
        if self.interrupted:
            return Exit.INTERRUPTED
        if self.record_error or any(s.status == "failed" and not s.ignored for s in self.steps):
            return Exit.STEP_FAILED
        if self.run.failed_lines:
            return Exit.LINES_FAILED
        return Exit.OK


class Reporter(Protocol):
    def start(self, run: RunContext) -> None: ...
    def step_started(self, result: StepResult) -> None: ...
    def item(self, result: StepResult, done: Done) -> None: ...
    def progress(self, result: StepResult, done: int, total: int, what: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def finish(self, result: RunResult) -> None: ...


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


def _timezone(playbook: Playbook) -> tzinfo | None:
    if playbook.timezone is None:
        return None
    try:
        return ZoneInfo(playbook.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PlaybookError(
            [
                playbook.source.problem(
                    ("timezone",),
                    f"unknown time zone {playbook.timezone!r} (e.g. Europe/Paris, UTC)",
                )
            ]
        ) from None


def build_context(
    playbook: Playbook,
    options: RunOptions,
    *,
    now: datetime | None = None,
    run_id: str | None = None,
) -> RunContext:
    """Freeze `now`, render vars (in order), area and roots. Reads only.

    `now` and `run_id` are given when post-treatments run again for a saved record.
    """
    renderer = Renderer(playbook.source)
    check_references(playbook, renderer, options.extra_vars)
    zone = _timezone(playbook)
    if now is None:
        now = datetime.now(zone) if zone else datetime.now().astimezone()
    elif zone is not None:
        now = now.astimezone(zone)
    run = RunContext(
        playbook=playbook,
        run_id=run_id or f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
        check=options.check,
        now=now,
        area=playbook.base_dir,
        roots=(),
        renderer=renderer,
        variables={},
        environ=dict(os.environ),
        diff=options.diff,
    )
    # -e values override vars and are visible to every var
    run.variables.update(options.extra_vars)
    for name, raw in playbook.vars:
        if name not in options.extra_vars:
            run.variables[name] = renderer.render_data(raw, run.template_context(), ("vars", name))
    context = run.template_context()
    area = renderer.render(playbook.area, context, ("area",))
    run.area = resolve_under(area, playbook.base_dir)
    local, remote = [], []
    for i, raw_root in enumerate(playbook.roots):
        root = renderer.render(raw_root, context, ("roots", i))
        if is_remote(root):
            try:
                remote.append(parse_remote(root))
            except ValueError as exc:
                raise PlaybookError([playbook.source.problem(("roots", i), str(exc))]) from None
        else:
            local.append(resolve_under(root, playbook.base_dir))
    run.roots, run.remote_roots = tuple(local), tuple(remote)
    run.storage = Storage(
        storage_options(
            {
                name: renderer.render(value, context, ("storage", name))
                for name, value in playbook.storage
            }
        )
    )
    run.prefix = playbook.prefix
    if playbook.database is not None:
        from runner.db.connect import DatabaseUrlError, parse_url

        raw = renderer.render(playbook.database, context, ("database",))
        try:
            run.database_url = parse_url(raw, playbook.base_dir)
        except DatabaseUrlError as exc:
            raise PlaybookError([playbook.source.problem(("database",), str(exc))]) from None
    return run


def prepare(run: RunContext, steps: Sequence[Step]) -> None:
    """Render and confine every step's parameters and `when`: all problems at once.

    Every sync step of the playbook, selected or not, names the control files it would
    process: those are protected from purge_old_files. Per-file treatments are checked
    for each of those files (or an example file when none is there yet).
    """
    problems: list[Problem] = []
    protected: dict[Path, str] = {}
    for step in run.playbook.sync:
        try:
            for path in sync_step.configure(step.params, StepScope(run, step)).files:
                protected.setdefault(path, step.kind)
        except PlaybookError as exc:
            problems.extend(exc.problems)
    run.protected = frozenset(protected)
    candidates = [file_context(p, c) for p, c in protected.items()] or [
        file_context(run.area / "example.csv", "enrolments")
    ]
    for step in steps:
        try:
            run.renderer.render(step.name, run.template_context(), (*step.item_path, "name"))
            if step.section == "post_treatments":
                treatment = TREATMENTS[step.kind]
                for extra in candidates if treatment.per_file else [None]:
                    scope = StepScope(run, step, {"file": extra} if extra else None)
                    _evaluate_when(run, step, scope)
                    treatment.configure(step.params, scope)
            else:
                _evaluate_when(run, step, StepScope(run, step))
                if run.database_url is None:
                    problems.append(
                        run.playbook.source.problem(
                            (*step.item_path, "command"),
                            "a sync step needs `database:` at the top of the playbook",
                        )
                    )
        except PlaybookError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PlaybookError(problems)


def _evaluate_when(run: RunContext, step: Step, scope: StepScope) -> bool:
    if step.when is None or isinstance(step.when, bool):
        return step.when is not False
    return bool(run.renderer.evaluate(step.when, scope.context(), (*step.item_path, "when")))


def _per_file(step: Step) -> bool:
    return step.section == "post_treatments" and TREATMENTS[step.kind].per_file


def _configure(run: RunContext, step: Step, result: StepResult) -> Any:
    """The treatment's configuration; for a per-file treatment, one per control file
    (those for which `when` holds), as (FileOutcome, config) pairs."""
    treatment = TREATMENTS[step.kind]
    if not treatment.per_file:
        return treatment.configure(step.params, StepScope(run, step))
    configs = []
    dirs: dict[str, str] = {}
    base = run.template_context()
    for outcome in run.files:
        extra = {"file": file_context(outcome.path, outcome.command)}
        scope = StepScope(run, step, extra, dirs, base)
        if _evaluate_when(run, step, scope):
            configs.append((outcome, treatment.configure(step.params, scope)))
    if run.files and not configs:
        result.detail = f"when: {step.when} is false for every control file"
    return configs


def _run_treatment(run: RunContext, step: Step, result: StepResult, reporter: Reporter) -> None:
    treatment = TREATMENTS[step.kind]
    config = _configure(run, step, result)
    if result.detail:
        result.status = "skipped"
        return
    plan: Plan = treatment.plan(config, run)
    result.detail = plan.summary
    if plan.skip_reason is not None:
        result.status, result.detail = "skipped", plan.skip_reason
        return
    if plan.actions:
        result.status = "changed"
    if run.check:
        for item in (Done(a) for a in plan.actions):
            result.items.append(item)
            reporter.item(result, item)
    elif plan.actions:
        applied: dict[int, Done] = {}
        try:
            total = len(plan.actions)
            for item in treatment.apply(plan.actions, run):
                applied[id(item.action)] = item
                reporter.item(result, item)
                reporter.progress(result, len(applied), total, f"{len(applied):,}/{total:,}")
        finally:
            # items in plan order, so the run prints what the preview printed
            result.items = [applied[id(a)] for a in plan.actions if id(a) in applied]
    if plan.errors:
        more = f" (and {len(plan.errors) - 3} more)" if len(plan.errors) > 3 else ""
        raise StepError("; ".join(plan.errors[:3]) + more)


def _run_sync(run: RunContext, step: Step, result: StepResult, reporter: Reporter) -> None:
    config = sync_step.configure(step.params, StepScope(run, step))

    def emit(done: Done) -> None:
        result.items.append(done)
        reporter.item(result, done)

    def progress(done: int, total: int, what: str) -> None:
        reporter.progress(result, done, total, what)

    result.status, result.detail = sync_step.run(config, run, emit, progress)


def execute_step(run: RunContext, result: StepResult, reporter: Reporter) -> None:
    step = result.step
    result.name = step.name
    with contextlib.suppress(PlaybookError):  # `prepare` rendered it already
        result.name = run.renderer.render(
            step.name, run.template_context(), (*step.item_path, "name")
        )
    reporter.step_started(result)
    try:
        if not _per_file(step) and not _evaluate_when(run, step, StepScope(run, step)):
            result.status, result.detail = "skipped", f"when: {step.when} is false"
        elif step.section == "post_treatments":
            _run_treatment(run, step, result, reporter)
        else:
            _run_sync(run, step, result, reporter)
    except (StepError, PlaybookError) as exc:
        result.status, result.error = "failed", str(exc)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        result.status, result.error = "failed", f"{exc.strerror or exc}{where}"
    except KeyboardInterrupt:
        result.status, result.error = "failed", "interrupted"
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy"):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        result.status, result.error = "failed", f"database error: {reason}"
    finally:
        run.step_status[result.name] = result.status


def run_playbook(playbook: Playbook, options: RunOptions, reporter: Reporter) -> RunResult:
    run = build_context(playbook, options)
    steps = [s for s in playbook.steps if selected(s.tags, options.tags, options.skip_tags)]
    return _execute(run, steps, options, reporter)


def _check_area(run: RunContext) -> None:
    if not run.area.is_dir():
        raise StepError(
            f"area {run.area} does not exist or is not a directory;"
            " create it or fix `area:` in the playbook"
        )


def _execute(
    run: RunContext, steps: Sequence[Step], options: RunOptions, reporter: Reporter
) -> RunResult:
    prepare(run, steps)
    _check_area(run)
    result = RunResult(run)
    with area_lock(run.area, run.run_id, options.lock_wait):
        reporter.start(run)
        try:
            for step in steps:
                step_result = StepResult(step)
                result.steps.append(step_result)
                execute_step(run, step_result, reporter)
                if step.section == "sync" and run.files:
                    # the boundary: post-treatments can be re-run from this record
                    _save_record(run, result, step_result, finished=False)
                reporter.step_finished(step_result)
                faults.point("step.done")
                if step_result.status == "failed" and not step_result.ignored:
                    break
        except KeyboardInterrupt:
            result.interrupted = True
            if result.steps:
                reporter.step_finished(result.steps[-1])
        finally:
            run.close()
        if run.files:
            result.record = _save_record(run, result, None, finished=True)
        prune_records(run.run_dir.parent, run.playbook.keep_records_days, keep=run.run_id)
        reporter.finish(result)
    return result


def _save_record(
    run: RunContext, result: RunResult, step: StepResult | None, *, finished: bool
) -> Path | None:
    """Save the run record; a failure (a full disk) fails the step, or the run."""
    try:
        path = save_record(run, result, finished=finished)
    except OSError as exc:
        error = f"cannot save the run record: {exc.strerror or exc}"
        if step is not None and step.status != "failed":
            step.status, step.error = "failed", error
        else:
            result.record_error = error
        return None
    faults.point("record.saved")
    return path


def run_post(
    record_file: Path,
    options: RunOptions,
    reporter: Reporter,
    playbook_file: Path | None = None,
) -> RunResult:
    """The playbook's post-treatments for a saved run record (`postsync post RECORD`).

    They run as part of that run: same run id, same `now` (so the same archive and
    report names), the record's control files and outcomes; the record's post-treatment
    steps are replaced by these.
    """
    from runner.playbook import load_playbook
    from runner.record import load_record
    from runner.sync.outcome import FileOutcome

    record = load_record(record_file)
    problem = record.problem
    if record.data["check"] and not options.check:
        raise PlaybookError(
            [
                problem(
                    "check",
                    "this record is from a --check run: nothing was synced, so there is"
                    " nothing to post-process (run the playbook, or add --check)",
                )
            ]
        )
    path = playbook_file or Path(record.data["playbook"])
    if not path.is_file():
        raise PlaybookError(
            [problem("playbook", f"the playbook {path} is gone; give it with --playbook")]
        )
    playbook = load_playbook(path)
    run = build_context(
        playbook,
        options,
        now=datetime.fromisoformat(record.data["started"]),
        run_id=record.data["run_id"],
    )
    if run.area != Path(record.data["area"]):
        raise PlaybookError(
            [
                problem(
                    "area",
                    f"the record is of area {record.data['area']}, the playbook's area is"
                    f" {run.area}",
                )
            ]
        )
    try:
        run.files = [
            FileOutcome.from_json(f, record.file.parent) for f in record.data["control_files"]
        ]
    except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise PlaybookError(
            [problem("control_files", f"malformed entry ({type(exc).__name__}: {exc})")]
        ) from None
    run.lines_ok = sum(f.changed + f.unchanged for f in run.files if not f.error)
    run.failed_lines = sum(len(f.failed) for f in run.files)
    run.prior_steps = [s for s in record.data["steps"] if s["section"] == "sync"]
    steps = [
        s for s in playbook.post_treatments if selected(s.tags, options.tags, options.skip_tags)
    ]
    return _execute(run, steps, options, reporter)
