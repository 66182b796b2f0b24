"""Before anything changes: the run context (now, vars, area, roots, database URL) and
every step's parameters rendered and confined, all problems at once."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runner.core.errors import MachineError, PlaybookError, Problem
from runner.engine.results import RunOptions
from runner.playbook import registry
from runner.playbook.model import Playbook, Step
from runner.playbook.references import check_references
from runner.playbook.templating import Environ, Renderer
from runner.step.context import Run, template_context
from runner.step.facts import RunFacts, file_context
from runner.step.ledger import Ledger
from runner.step.scope import StepScope
from runner.step.services import DatabaseSettings, Services
from runner.storage.paths import resolve_under
from runner.storage.remote import Storage, is_remote, storage_options
from runner.storage.remote import parse as parse_remote
from runner.sync import step as sync_step
from runner.treatments import TREATMENTS


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


def _path(rendered: str, playbook: Playbook, where: tuple[str | int, ...]) -> str:
    """A rendered top-level path; an empty one is an error, never the playbook's own
    directory by accident (`area: "{{ env.AREA }}"` with AREA set but empty)."""
    if not rendered.strip():
        raise PlaybookError(
            [
                playbook.source.problem(
                    where,
                    "renders to an empty path; is a variable or an environment variable empty?",
                )
            ]
        )
    return rendered


def build_context(
    playbook: Playbook,
    options: RunOptions,
    *,
    now: datetime | None = None,
    run_id: str | None = None,
) -> Run:
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
    # -e values override vars and are visible to every var; each var sees those before
    variables: dict[str, object] = dict(options.extra_vars)
    facts = RunFacts(
        playbook=playbook,
        run_id=run_id or f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
        check=options.check,
        now=now,
        area=playbook.base_dir,
        roots=(),
        renderer=renderer,
        variables=MappingProxyType(variables),
        environ=Environ(os.environ),
        diff=options.diff,
        full_reconcile=options.full_reconcile,
        prefix=playbook.prefix,
        host=socket.gethostname(),
    )
    ledger = Ledger(preview=options.check)
    for name, raw in playbook.vars:
        if name not in options.extra_vars:
            context = template_context(facts, ledger)
            variables[name] = renderer.render_data(raw, context, ("vars", name))
    facts = replace(facts, variables=MappingProxyType(dict(variables)))
    context = template_context(facts, ledger)
    area = _path(renderer.render(playbook.area, context, ("area",)), playbook, ("area",))
    local, remote = [], []
    for i, raw_root in enumerate(playbook.roots):
        root = _path(renderer.render(raw_root, context, ("roots", i)), playbook, ("roots", i))
        if is_remote(root):
            try:
                remote.append(parse_remote(root))
            except ValueError as exc:
                raise PlaybookError([playbook.source.problem(("roots", i), str(exc))]) from None
        else:
            local.append(resolve_under(root, playbook.base_dir))
    storage = Storage(
        storage_options(
            {
                name: renderer.render(value, context, ("storage", name))
                for name, value in playbook.storage
            }
        )
    )
    database_url = None
    if playbook.database is not None:
        from runner.db.url import DatabaseUrlError, check_url

        raw = renderer.render(playbook.database, context, ("database",))
        try:
            database_url = check_url(raw, playbook.base_dir)
            reason = None
            if not database_url.driver_found():  # SQLAlchemy says why
                from runner.db.connect import driver_problem, sqlalchemy_url

                reason = driver_problem(sqlalchemy_url(database_url))
        except DatabaseUrlError as exc:
            raise PlaybookError([playbook.source.problem(("database",), str(exc))]) from None
        if reason:  # before anything runs, as `validate` says
            raise PlaybookError([playbook.source.problem(("database",), reason)])
    facts = replace(
        facts,
        area=resolve_under(area, playbook.base_dir),
        roots=tuple(local),
        remote_roots=tuple(remote),
        database_url=database_url,
    )
    settings = DatabaseSettings(
        database_url, playbook.prefix, playbook.connect_timeout, playbook.lock_timeout
    )
    services = Services(settings, storage, facts.run_dir, preview=options.check)
    return Run(facts, services, ledger)


def prepare(run: Run, steps: Sequence[Step]) -> None:
    """Render and confine every step's parameters and `when`: all problems at once.

    Every sync step of the playbook, selected or not, names the control files it would
    process: those are protected from purge_old_files. Per-file treatments are checked
    for each of those files (or an example file when none is there yet).
    """
    problems: list[Problem] = []
    machine: list[Problem] = []  # what only this machine lacks
    protected: dict[Path, str] = {}
    globs = []
    for step in run.facts.playbook.sync:
        try:
            config = sync_step.configure(step.params, run.scope(step))
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        globs.append(config.glob)
        for path in config.files:
            protected.setdefault(path, step.kind)
    run.facts = replace(run.facts, protected=frozenset(protected), control_globs=tuple(globs))
    facts = run.facts
    # per-file treatments are checked for the files they will meet: those the sync
    # will read, and a saved record's (`postsync post`)
    files = {**protected, **{f.path: f.command for f in run.ledger.files}}
    candidates = [file_context(p, c) for p, c in files.items()] or [
        file_context(facts.area / "example.csv", "enrolments")
    ]
    for step in steps:
        try:
            facts.renderer.render(step.name, run.template_context(), (*step.item_path, "name"))
            if step.section == "post_treatments":
                treatment = TREATMENTS[step.kind]
                per_file = registry.TREATMENTS[step.kind].per_file
                dirs: dict[str, str] = {}  # resolved once for all of the step's files
                base = run.template_context()
                for extra in candidates if per_file else [None]:
                    scope = run.scope(step, {"file": extra} if extra else None, dirs, base)
                    evaluate_when(step, scope)
                    treatment.configure(step.params, scope)
            else:
                evaluate_when(step, run.scope(step))
                if facts.database_url is None:
                    problems.append(
                        facts.playbook.source.problem(
                            (*step.item_path, "command"),
                            "a sync step needs `database:` at the top of the playbook",
                        )
                    )
        except MachineError as exc:
            machine.extend(p for p in exc.problems if p not in machine)
        except PlaybookError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PlaybookError(problems + machine)
    if machine:
        raise MachineError(machine)


def check_playbook(playbook: Playbook, extra_vars: Mapping[str, Any]) -> tuple[Path, list[Problem]]:
    """`postsync validate`: every check `run --check` makes before it reads the database
    or a control file (templates rendered with `-e` and the environment as given, paths
    confined, time zone, encodings, the database URL and its driver), all problems at
    once; PlaybookError, or StepError for what `run` would stop on. Returns the area, as
    rendered here, and what only this machine lacks (a run here would stop on it)."""
    run = build_context(playbook, RunOptions(check=True, extra_vars=extra_vars))
    try:
        prepare(run, playbook.steps)
    except MachineError as exc:
        return run.facts.area, exc.problems
    return run.facts.area, []


def evaluate_when(step: Step, scope: StepScope) -> bool:
    if step.when is None or isinstance(step.when, bool):
        return step.when is not False
    renderer = scope.run.renderer
    return bool(renderer.evaluate(step.when, scope.context(), (*step.item_path, "when")))
