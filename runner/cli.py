"""The command line: a thin argparse front dispatching to one function per subcommand."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from runner import __version__
from runner.errors import Exit, PlaybookError, PostsyncError, StepError, UsageError
from runner.secrets import redact

RUN_EXAMPLES = """\
examples:
  postsync run playbooks/nightly.yml
  postsync run playbooks/nightly.yml --check --diff      # preview, change nothing
  postsync run nightly.yml -e stamp=20261124 -e @site-vars.yml
  postsync run nightly.yml --tags housekeeping --output json
  postsync run nightly.yml --lock-wait 300               # wait for a running feed

exit codes: 0 ok, 2 control-file lines failed, 3 a step failed, 4 invalid playbook
(nothing changed), 5 usage error, 6 area locked by another run, 130 interrupted,
1 internal error (traceback in a log file)."""

POST_EXAMPLES = """\
examples:
  postsync post /srv/feed/.postsync/runs/20261124T010002-3fa9c1.json
  postsync post RECORD --check --diff                   # preview
  postsync post RECORD --tags archive --playbook nightly.yml

Use it when a post-treatment failed (a full disk, a permission) once the cause is
fixed: what was already done counts as done, the rest is done now. The record is
updated with these steps. Exit codes as for `run`."""

VALIDATE_EXAMPLES = """\
examples:
  postsync validate playbooks/nightly.yml
  postsync validate playbooks/*.yml -e stamp=x

Checks YAML syntax, duplicate keys, the JSON Schema and every template's syntax and
variable names. Prints FILE:LINE:COL: PATH: message for each problem; exit 4 if any."""

LIST_EXAMPLES = """\
examples:
  postsync list-tasks playbooks/nightly.yml
  postsync list-tasks playbooks/nightly.yml --tags housekeeping"""

SCHEMA_EXAMPLES = """\
examples:
  postsync schema > playbook.schema.json
  postsync schema record
  postsync schema output    # --output json documents and --output jsonl events"""

DB_EXAMPLES = """\
examples:
  postsync db init sqlite:///moodle.db --demo
  postsync db init postgresql+psycopg://postsync@localhost/moodle_test --prefix mdl_

Creates Moodle's enrolment, role, context and group tables with a fresh install's rows
(standard roles, system context, site course). For the embedded default, demos and
tests: it refuses to touch a database where any of these tables exists."""

DEMO_EXAMPLES = """\
examples:
  postsync demo
  postsync demo /tmp/postsync-demo

Builds DIR (default ./postsync-demo): a seeded SQLite database, an area holding an
enrolment file and a group-members file (a few lines fail on purpose), a playbook, and
runs it. A DIR from an earlier demo is rebuilt; any other non-empty DIR is refused."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _extra_var(text: str) -> tuple[str, str]:
    return (text, "")


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tags",
        metavar="T,...",
        action="append",
        default=[],
        help="run only steps with one of these tags",
    )
    parser.add_argument(
        "--skip-tags",
        metavar="T,...",
        action="append",
        default=[],
        help="skip steps with one of these tags",
    )


def _add_extra_vars(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-e",
        "--extra-vars",
        metavar="KEY=VALUE|@FILE",
        action="append",
        default=[],
        help="set a variable (overrides vars:), or load a YAML file",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="preview: print what would be done, change nothing"
    )
    parser.add_argument(
        "--diff", action="store_true", help="show diffs of text files written and the files deleted"
    )
    _add_extra_vars(parser)
    _add_selection(parser)
    parser.add_argument(
        "--output",
        choices=("text", "json", "jsonl"),
        default="text",
        help="text (default), one JSON document, or JSON lines as events",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for another run on the area (default: 0)",
    )


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="postsync",
        formatter_class=fmt,
        description="Run LMS synchronisation feeds and their post-treatments from YAML playbooks.",
        epilog="Run `postsync COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"postsync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a playbook",
        formatter_class=fmt,
        description="Run a playbook: sync steps, then post-treatments.",
        epilog=RUN_EXAMPLES,
    )
    run.add_argument("playbook", type=Path, help="the playbook file")
    _add_run_options(run)

    post = sub.add_parser(
        "post",
        help="run the post-treatments of a saved run record",
        formatter_class=fmt,
        description="Run a playbook's post-treatments for a saved run record (no sync):"
        " as part of that run, with its run id, its `now` and its control files.",
        epilog=POST_EXAMPLES,
    )
    post.add_argument("record", type=Path, help="AREA/.postsync/runs/RUN_ID.json")
    post.add_argument(
        "--playbook",
        type=Path,
        metavar="PLAYBOOK",
        help="the playbook (default: the one named in the record)",
    )
    _add_run_options(post)

    validate = sub.add_parser(
        "validate",
        help="check playbooks without running them",
        formatter_class=fmt,
        epilog=VALIDATE_EXAMPLES,
        description="Validate playbooks; changes nothing.",
    )
    validate.add_argument("playbooks", type=Path, nargs="+", metavar="PLAYBOOK")
    _add_extra_vars(validate)

    tasks = sub.add_parser(
        "list-tasks",
        help="list a playbook's steps with their tags",
        formatter_class=fmt,
        epilog=LIST_EXAMPLES,
        description="List the steps a run would take, in order.",
    )
    tasks.add_argument("playbook", type=Path)
    _add_selection(tasks)

    schema = sub.add_parser(
        "schema",
        help="print a JSON Schema",
        formatter_class=fmt,
        epilog=SCHEMA_EXAMPLES,
        description="Print a JSON Schema.",
    )
    schema.add_argument(
        "which", nargs="?", choices=("playbook", "record", "output"), default="playbook"
    )

    db = sub.add_parser(
        "db",
        help="database utilities",
        formatter_class=fmt,
        epilog=DB_EXAMPLES,
        description="Database utilities.",
    )
    db_sub = db.add_subparsers(
        dest="db_command", metavar="COMMAND", parser_class=_Parser, required=True
    )
    init = db_sub.add_parser(
        "init",
        help="create the Moodle tables postsync uses",
        formatter_class=fmt,
        epilog=DB_EXAMPLES,
        description="Create the Moodle tables postsync uses.",
    )
    init.add_argument("url", help="SQLAlchemy URL, e.g. sqlite:///moodle.db")
    init.add_argument("--prefix", default="mdl_", help="table prefix (default: mdl_)")
    init.add_argument(
        "--demo", action="store_true", help="also seed a demo site (users, courses, groups)"
    )

    demo = sub.add_parser(
        "demo",
        help="build and run a demo workspace",
        formatter_class=fmt,
        epilog=DEMO_EXAMPLES,
        description="Build and run a demo workspace.",
    )
    demo.add_argument("dir", nargs="?", type=Path, default=Path("postsync-demo"))
    return parser


def _split_tags(values: Sequence[str]) -> frozenset[str]:
    return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())


def parse_extra_vars(values: Sequence[str]) -> dict[str, Any]:
    from runner.playbook import load_vars_file
    from runner.templating import RESERVED

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
    from runner.engine import RunOptions, run_playbook, run_post
    from runner.output import make_reporter
    from runner.playbook import load_playbook

    reporter = make_reporter(args.output, diff=args.diff)
    if args.lock_wait < 0:
        raise UsageError("--lock-wait must be zero or more seconds")
    try:
        options = RunOptions(
            check=args.check,
            diff=args.diff,
            extra_vars=parse_extra_vars(args.extra_vars),
            tags=_split_tags(args.tags),
            skip_tags=_split_tags(args.skip_tags),
            lock_wait=args.lock_wait,
        )
        if args.command == "post":
            result = run_post(args.record, options, reporter, args.playbook)
        else:
            result = run_playbook(load_playbook(args.playbook), options, reporter)
    except PostsyncError as exc:
        reporter.abort(exc, args.check)
        raise
    return int(result.exit_code)


def cmd_validate(args: argparse.Namespace) -> int:
    from runner.playbook import load_playbook
    from runner.references import check_references
    from runner.templating import Renderer

    extra = parse_extra_vars(args.extra_vars)
    failed = 0
    for path in args.playbooks:
        try:
            playbook = load_playbook(path)
            check_references(playbook, Renderer(playbook.source), extra)
        except PlaybookError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        print(
            f"ok  {path}  ({len(playbook.sync)} sync steps,"
            f" {len(playbook.post_treatments)} post-treatments)"
        )
    if failed:
        print(f"postsync: {failed} of {len(args.playbooks)} playbooks invalid", file=sys.stderr)
        return int(Exit.INVALID)
    return int(Exit.OK)


def cmd_list_tasks(args: argparse.Namespace) -> int:
    from runner.engine import selected
    from runner.playbook import load_playbook

    playbook = load_playbook(args.playbook)
    only, skip = _split_tags(args.tags), _split_tags(args.skip_tags)
    print(f"playbook: {playbook.name} ({args.playbook})")
    for step in playbook.steps:
        mark = " " if selected(step.tags, only, skip) else "-"
        tags = ",".join(step.tags) or "-"
        print(f"{mark} {step.label:<20} {step.kind:<22} {step.name:<30} tags: {tags}")
    if only or skip:
        print("(steps marked - are left out by --tags/--skip-tags)")
    return int(Exit.OK)


def cmd_schema(args: argparse.Namespace) -> int:
    from runner.output_schema import output_schema
    from runner.record import record_schema
    from runner.schema import playbook_schema

    schema = {"record": record_schema, "output": output_schema}.get(args.which, playbook_schema)()
    print(json.dumps(schema, indent=2))
    return int(Exit.OK)


def cmd_db(args: argparse.Namespace) -> int:
    import re
    import time

    from runner.db.connect import DatabaseUrlError, connect, masked, parse_url
    from runner.db.init import create_tables, seed_demo
    from runner.db.tables import moodle_tables

    if not re.fullmatch(r"[A-Za-z0-9_]*", args.prefix):
        raise UsageError(f"--prefix {args.prefix!r}: letters, digits and _ only")
    try:
        url = parse_url(args.url, Path.cwd())
    except DatabaseUrlError as exc:
        raise UsageError(f"{exc}") from None
    engine = connect(url)
    tables = moodle_tables(args.prefix)
    now = int(time.time())
    try:
        create_tables(engine, tables, now)
        print(f"created {len(tables.all)} tables in {masked(url)} (prefix {args.prefix})")
        if args.demo:
            site = seed_demo(engine, tables, now)
            print(
                f"seeded a demo site: {site.users} users, {site.courses} courses,"
                f" {site.groups} groups"
            )
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StepError(f"database {masked(url)}: {reason}") from None
        raise
    finally:
        engine.dispose()
    return int(Exit.OK)


def cmd_demo(args: argparse.Namespace) -> int:
    from runner.demo import build_demo

    return build_demo(args.dir)


COMMANDS = {
    "run": cmd_run,
    "post": cmd_run,
    "validate": cmd_validate,
    "list-tasks": cmd_list_tasks,
    "schema": cmd_schema,
    "db": cmd_db,
    "demo": cmd_demo,
}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _crash_log() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    for directory in (Path(base) / "postsync", Path(tempfile.gettempdir())):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"postsync-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(redact(traceback.format_exc()))
            return path
        except OSError:
            continue
    return Path("-")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return int(Exit.USAGE)
        return COMMANDS[args.command](args)
    except PostsyncError as exc:
        if isinstance(exc, PlaybookError):
            print(redact(str(exc)), file=sys.stderr)
            count = len(exc.problems)
            print(
                f"postsync: invalid, nothing was changed ({count} problem{'s' * (count > 1)})",
                file=sys.stderr,
            )
        else:
            print(redact(f"postsync: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("postsync: interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)
    except BrokenPipeError:
        # stdout's reader went away (`postsync ... | head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.INTERNAL)
    except Exception as exc:
        log = _crash_log()
        print(
            redact(
                f"postsync: internal error: {type(exc).__name__}: {exc} (traceback in {log};"
                " please report it)"
            ),
            file=sys.stderr,
        )
        return int(Exit.INTERNAL)
    finally:
        signal.signal(signal.SIGTERM, previous)
