"""The argument parser: every subcommand, its options, and its help with examples."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn

from runner import __version__
from runner.cli.examples import (
    DB_EXAMPLES,
    DEMO_EXAMPLES,
    LIST_EXAMPLES,
    POST_EXAMPLES,
    RETRY_EXAMPLES,
    RUN_EXAMPLES,
    SCHEMA_EXAMPLES,
    SHOW_EXAMPLES,
    STATUS_EXAMPLES,
    UNDO_EXAMPLES,
    VALIDATE_EXAMPLES,
)
from runner.core.errors import UsageError
from runner.db.releases import NEWEST, RELEASES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # printed after "postsync: ": the command without the program's name again
        command = self.prog.removeprefix("postsync").strip()
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (see {self.prog} --help)")


def _seconds(text: str) -> float:
    """A finite number of seconds, zero or more (not nan, inf or negative)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds, 0 or more")
    return value


def _failed_limit(text: str) -> int:
    """A number of lines, 1 or more, or `all` (0)."""
    if text == "all":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of lines, 1 or more, or all")
    return value


def _add_failed_view(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--failed",
        action="store_true",
        help="text output: under each control file, its failed lines and why"
        " (the first 20 of each file)",
    )
    parser.add_argument(
        "--failed-limit",
        type=_failed_limit,
        metavar="N|all",
        help="--failed: at most N failed lines of each file (default 20), or all of them;"
        " implies --failed",
    )


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
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write the run's figures there, for node_exporter's textfile collector"
        " (e.g. /var/lib/node_exporter/textfile/postsync.prom; not with --check);"
        " checked before the steps: one that cannot be written makes the run exit 3",
    )
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="text output: only the failed steps and the recap",
    )
    loud.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="text output: also each control-file line's outcome",
    )
    parser.add_argument(
        "--lock-wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for another run on the area (default: 0)",
    )


def _record_command(
    sub: argparse._SubParsersAction[_Parser],
    name: str,
    summary: str,
    description: str,
    epilog: str,
) -> argparse.ArgumentParser:
    """A subcommand run for a saved run record, with the playbook it names or another."""
    command = sub.add_parser(
        name,
        help=summary,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=description,
        epilog=epilog,
    )
    command.add_argument("record", type=Path, help="AREA/.postsync/runs/RUN_ID.json")
    command.add_argument(
        "--playbook",
        type=Path,
        metavar="PLAYBOOK",
        help="the playbook (default: the one named in the record)",
    )
    return command


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
    _add_failed_view(run)
    run.add_argument(
        "--full-reconcile",
        action="store_true",
        help="snapshot steps with diff: true compare their whole file with the database"
        " this run, not only the lines changed since the snapshot they keep",
    )

    post = _record_command(
        sub,
        "post",
        "run the post-treatments of a saved run record",
        "Run a playbook's post-treatments for a saved run record (no sync):"
        " as part of that run, with its run id, its `now` and its control files.",
        POST_EXAMPLES,
    )
    _add_run_options(post)
    post.set_defaults(failed=False, failed_limit=None)  # no sync: no control-file lines

    show = sub.add_parser(
        "show",
        help="print what a saved run did",
        formatter_class=fmt,
        description="Print a saved run record: its run, steps and control files' outcomes.",
        epilog=SHOW_EXAMPLES,
    )
    show.add_argument("record", type=Path, help="AREA/.postsync/runs/RUN_ID.json")
    _add_failed_view(show)

    retry = _record_command(
        sub,
        "retry",
        "apply the failed lines of a saved run again",
        "Apply the failed lines of a saved run again, each through the sync step that read"
        " it, as a new run (with the run's post-treatments for those lines).",
        RETRY_EXAMPLES,
    )
    _add_run_options(retry)
    _add_failed_view(retry)

    undo = _record_command(
        sub,
        "undo",
        "write control files that reverse a saved run, from its change journal",
        "Write control files that reverse a saved run (from its change journal), and a"
        " playbook applying them: preview them with `postsync run DIR/undo.yml --check`.",
        UNDO_EXAMPLES,
    )
    undo.add_argument(
        "--check", action="store_true", help="print what would be written, write nothing"
    )
    undo.add_argument(
        "--into",
        type=Path,
        metavar="DIR",
        help="write the files there (default: AREA/.postsync/undo/RUN_ID)",
    )

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
    _add_extra_vars(tasks)

    schema = sub.add_parser(
        "schema",
        help="print a JSON Schema",
        formatter_class=fmt,
        epilog=SCHEMA_EXAMPLES,
        description="Print a JSON Schema.",
    )
    schema.add_argument(
        "which", nargs="?", choices=("playbook", "record", "output", "journal"), default="playbook"
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
        "--moodle",
        choices=list(RELEASES),
        default=NEWEST,
        metavar="RELEASE",
        help=f"the Moodle release whose tables to make: {', '.join(RELEASES)} (default: {NEWEST})",
    )
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

    status = sub.add_parser(
        "status",
        help="each playbook's last run of an area: for health checks and monitoring",
        formatter_class=fmt,
        epilog=STATUS_EXAMPLES,
        description="Show each playbook's last run of AREA (a real run, not a preview).",
    )
    status.add_argument("area", type=Path, help="the area (a playbook's `area:`)")
    status.add_argument(
        "--max-age-hours",
        type=float,
        default=26.0,
        metavar="HOURS",
        help="a last run finished longer ago is stale (default 26: a nightly and its slack)",
    )
    status.add_argument("--output", choices=("text", "json"), default="text")
    return parser
