"""One function per subcommand, each returning its exit code."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import (
    Exit,
    PlaybookError,
    PostsyncError,
    StepError,
    UsageError,
    database_reason,
    interruption_exit,
)
from runner.core.text import plural, printable

if TYPE_CHECKING:
    from runner.engine.results import RunResult


def _split_tags(values: Sequence[str]) -> frozenset[str]:
    return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())


def parse_extra_vars(values: Sequence[str]) -> dict[str, Any]:
    from runner.playbook.model import load_vars_file
    from runner.playbook.templating import RESERVED

    out: dict[str, Any] = {}
    for value in values:
        if value.startswith("@"):
            out.update(load_vars_file(Path(value[1:])))
            continue
        key, sep, text = value.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"-e {value!r}: expected KEY=VALUE or @FILE.yml")
        out[key] = text
    for key in out:
        if key in RESERVED:
            raise UsageError(f"-e {key}: {key!r} is reserved (now, env, area, run, file)")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from runner.cli.lines import lines_view
    from runner.cli.output import make_reporter
    from runner.engine.execute import run_playbook
    from runner.engine.post import run_post
    from runner.engine.results import RunOptions
    from runner.engine.retry import run_retry
    from runner.playbook.model import load_playbook

    reporter = make_reporter(
        args.output,
        diff=args.diff,
        verbosity=-1 if args.quiet else 1 if args.verbose else 0,
        lines=lines_view(every=args.verbose, failed=args.failed, limit=args.failed_limit),
    )
    clock = time.monotonic()
    result: RunResult | None = None
    code = Exit.INTERNAL
    metrics = args.metrics_file is not None and not args.check
    try:
        options = RunOptions(
            problems=_metrics_problem(args.metrics_file) if metrics else (),
            check=args.check,
            diff=args.diff,
            extra_vars=parse_extra_vars(args.extra_vars),
            tags=_split_tags(args.tags),
            skip_tags=_split_tags(args.skip_tags),
            lock_wait=args.lock_wait,
            full_reconcile=getattr(args, "full_reconcile", False),
        )
        if args.command == "post":
            result = run_post(args.record, options, reporter, args.playbook)
        elif args.command == "retry":
            result = run_retry(args.record, options, reporter, args.playbook)
        else:
            result = run_playbook(load_playbook(args.playbook), options, reporter)
        code = result.exit_code
    except PostsyncError as exc:
        code = exc.exit_code
        reporter.abort(exc, args.check)
        raise
    except KeyboardInterrupt as exc:
        code = interruption_exit(exc)
        raise
    finally:
        if metrics and not _metrics(args, result, int(code), time.monotonic() - clock):
            # a run that did its work still fails: the monitoring is blind
            code = Exit.STEP_FAILED if code in (Exit.OK, Exit.LINES_FAILED) else code
    return int(code)


def _metrics_problem(path: Path) -> tuple[str, ...]:
    """Why the metrics file could not be written at the end of the run, if it could not
    (the run goes on, tells of it and exits 3)."""
    from runner.cli.metrics import check_writable

    try:
        check_writable(path)
    except OSError as exc:
        return (f"metrics file {path}: {exc.strerror or exc}",)
    return ()


def _metrics(
    args: argparse.Namespace, result: RunResult | None, code: int, duration: float
) -> bool:
    """--metrics-file: the run's figures (a run that did not start: its exit code);
    False when they could not be written (said on stderr)."""
    from runner.cli.metrics import Figures, write_metrics
    from runner.cli.output_json import recap

    if result is not None:
        name = result.run.facts.playbook.name
        figures = recap(result)
    else:
        name = _playbook_name(args)
        figures = dict.fromkeys(
            ("lines_ok", "lines_failed", "ok", "changed", "warning", "skipped", "failed"), 0
        )
    try:
        write_metrics(
            args.metrics_file,
            name,
            Figures(
                exit_code=code,
                finished=time.time(),
                duration=duration,
                lines={"ok": figures["lines_ok"], "failed": figures["lines_failed"]},
                steps={s: figures[s] for s in ("ok", "changed", "warning", "skipped", "failed")},
            ),
        )
    except OSError as exc:
        print(f"postsync: metrics file {args.metrics_file}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _playbook_name(args: argparse.Namespace) -> str:
    """The playbook's name for a run that did not start (its file's, if unreadable)."""
    from runner.playbook.model import load_playbook

    if args.command in ("post", "retry"):
        return str(args.record.stem)
    try:
        return load_playbook(args.playbook).name
    except (PostsyncError, OSError):
        pass
    try:  # an invalid playbook: its name, if its YAML says one
        import yaml

        data = yaml.safe_load(args.playbook.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return str(data["name"])
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass
    return str(args.playbook.stem)


def cmd_validate(args: argparse.Namespace) -> int:
    from runner.engine.prepare import check_playbook
    from runner.playbook.model import load_playbook

    extra = parse_extra_vars(args.extra_vars)
    failed = 0
    for path in args.playbooks:
        try:
            playbook = load_playbook(path)
            area, lacking = check_playbook(playbook, extra)
        except PlaybookError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        except StepError as exc:  # what `run` would stop on before any change
            failed += 1
            print(f"{path}: {exc}", file=sys.stderr)
            continue
        print(
            f"ok  {path}  ({plural(len(playbook.sync), 'sync step')},"
            f" {plural(len(playbook.post_treatments), 'post-treatment')})"
        )
        if not area.is_dir():  # the playbook is right; this machine may not be the server
            print(
                f"postsync: warning: {path}: the area {printable(str(area))} is not a"
                " directory on this machine: a run here would stop before any step",
                file=sys.stderr,
            )
        for problem in lacking:
            print(
                f"postsync: warning: {problem} (on this machine: a run here would stop"
                " before any step)",
                file=sys.stderr,
            )
    if failed:
        print(f"postsync: {failed} of {len(args.playbooks)} playbooks invalid", file=sys.stderr)
        return int(Exit.INVALID)
    return int(Exit.OK)


def _rendered_names(playbook: Any, extra: dict[str, Any]) -> list[str]:
    """The steps' names as a run shows them (a name that needs what only a run knows,
    or a playbook whose templates fail, shows as written)."""
    from runner.engine.prepare import build_context
    from runner.engine.results import RunOptions

    try:
        run = build_context(playbook, RunOptions(check=True, extra_vars=extra))
    except PostsyncError:
        return [step.name for step in playbook.steps]
    names = []
    for step in playbook.steps:
        try:
            names.append(
                run.facts.renderer.render(
                    step.name, run.template_context(), (*step.item_path, "name")
                )
            )
        except PostsyncError:
            names.append(step.name)
    return names


def cmd_list_tasks(args: argparse.Namespace) -> int:
    from runner.engine.results import check_tags, selected
    from runner.playbook.model import load_playbook

    playbook = load_playbook(args.playbook)
    only, skip = _split_tags(args.tags), _split_tags(args.skip_tags)
    check_tags(playbook.steps, only, skip)
    print(f"playbook: {playbook.name} ({args.playbook})")
    names = _rendered_names(playbook, parse_extra_vars(args.extra_vars))
    rows = [
        (
            " " if selected(step.tags, only, skip) else "-",
            step.label,
            step.kind,
            printable(name),
            ",".join(step.tags) or "-",
        )
        for step, name in zip(playbook.steps, names, strict=True)
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(1, 4)]
    for mark, label, kind, name, tags in rows:
        print(
            f"{mark} {label:<{widths[0]}}  {kind:<{widths[1]}}  {name:<{widths[2]}}  tags: {tags}"
        )
    if only or skip:
        print("(steps marked - are left out by --tags/--skip-tags)")
    return int(Exit.OK)


def cmd_schema(args: argparse.Namespace) -> int:
    from runner.cli.output_schema import output_schema
    from runner.playbook.schema import playbook_schema
    from runner.record.journal import journal_schema
    from runner.record.schema import record_schema

    schemas = {"record": record_schema, "output": output_schema, "journal": journal_schema}
    schema = schemas.get(args.which, playbook_schema)()
    print(json.dumps(schema, indent=2))
    return int(Exit.OK)


def cmd_db(args: argparse.Namespace) -> int:
    import re
    import time

    from runner.db.connect import connect, masked, parse_url
    from runner.db.init import create_tables, seed_demo
    from runner.db.tables import moodle_tables
    from runner.db.url import DatabaseUrlError

    if not re.fullmatch(r"[A-Za-z0-9_]*", args.prefix):
        raise UsageError(f"--prefix {args.prefix!r}: letters, digits and _ only")
    try:
        url = parse_url(args.url, Path.cwd())
    except DatabaseUrlError as exc:
        raise UsageError(f"{exc}") from None
    engine = connect(url)
    tables = moodle_tables(args.prefix, args.moodle)
    now = int(time.time())
    try:
        create_tables(engine, tables, now)
        print(
            f"created {len(tables.all)} tables of Moodle {tables.release.name} in"
            f" {masked(url)} (prefix {args.prefix})"
        )
        if args.demo:
            site = seed_demo(engine, tables, now)
            print(
                f"seeded a demo site: {site.users} users, {site.courses} courses,"
                f" {site.groups} groups"
            )
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            reason = database_reason(exc)
            raise StepError(f"database {masked(url)}: {reason}") from None
        raise
    finally:
        engine.dispose()
    return int(Exit.OK)


def cmd_show(args: argparse.Namespace) -> int:
    from runner.cli.lines import lines_view
    from runner.cli.show import show_record

    view = lines_view(every=False, failed=args.failed, limit=args.failed_limit)
    return show_record(args.record, view)


def cmd_demo(args: argparse.Namespace) -> int:
    from runner.cli.demo import build_demo

    return build_demo(args.dir)


def cmd_undo(args: argparse.Namespace) -> int:
    from runner.cli.undo import cmd_undo as undo

    return undo(args)


def cmd_status(args: argparse.Namespace) -> int:
    from runner.cli.status import cmd_status as status

    return status(args)


COMMANDS = {
    "run": cmd_run,
    "post": cmd_run,
    "show": cmd_show,
    "retry": cmd_run,
    "validate": cmd_validate,
    "list-tasks": cmd_list_tasks,
    "schema": cmd_schema,
    "db": cmd_db,
    "demo": cmd_demo,
    "status": cmd_status,
    "undo": cmd_undo,
}
