"""The argument parser: every subcommand, its options, and its help with examples."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn

from runner import __version__
from runner.core.errors import UsageError

RUN_EXAMPLES = """\
examples:
  postsync run playbooks/nightly.yml
  postsync run playbooks/nightly.yml --check --diff      # preview, change nothing
  postsync run nightly.yml -e stamp=20261124 -e @site-vars.yml
  postsync run nightly.yml --tags housekeeping --output json
  postsync run nightly.yml --lock-wait 300               # wait for a running feed

exit codes: 0 ok, 2 control-file lines failed, 3 a step failed, 4 invalid playbook
(nothing changed), 5 usage error, 6 area locked by another run, 130 interrupted
(SIGINT), 143 terminated (SIGTERM), 1 internal error (traceback in a log file)."""


POST_EXAMPLES = """\
examples:
  postsync post /srv/feed/.postsync/runs/20261124T010002-3fa9c1.json
  postsync post RECORD --check --diff                   # preview
  postsync post RECORD --tags archive --playbook nightly.yml

Use it when a post-treatment failed (a full disk, a permission) once the cause is
fixed: what was already done counts as done, the rest is done now. The record is
updated with these steps. Exit codes as for `run`."""


RETRY_EXAMPLES = """\
examples:
  postsync retry /srv/feed/.postsync/runs/20261204T023000-3fa9c1.json --check
  postsync retry /srv/feed/.postsync/runs/20261204T023000-3fa9c1.json
  postsync retry RECORD --tags enrolments --playbook nightly.yml

Once the site is fixed (the missing user created, the course's idnumber corrected),
applies the failed lines of the run the record is of again, byte for byte, each through
the sync step that read it; --check shows exactly what the retry would do. A new run,
with its own record naming the retried run: the report of the retried lines and a retry
file of those still failing are written as the playbook says; the control files are
never archived or deleted again, no group is cleaned up, nothing purged. A line applied
by an earlier retry of the same run (or of a retry of it) is not applied again: retry
the same record, or the retry's record, as often as needed. Exit codes as for `run`."""


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
        " (e.g. /var/lib/node_exporter/textfile/postsync.prom; not with --check)",
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

    retry = sub.add_parser(
        "retry",
        help="apply the failed lines of a saved run again",
        formatter_class=fmt,
        description="Apply the failed lines of a saved run again, each through the sync"
        " step that read it, as a new run (with the run's post-treatments for those lines).",
        epilog=RETRY_EXAMPLES,
    )
    retry.add_argument("record", type=Path, help="AREA/.postsync/runs/RUN_ID.json")
    retry.add_argument(
        "--playbook",
        type=Path,
        metavar="PLAYBOOK",
        help="the playbook (default: the one named in the record)",
    )
    _add_run_options(retry)

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
