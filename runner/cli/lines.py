"""A control file's lines, printed under its own `sync FILE` line: each line's outcome
(`-v`), or its failed lines alone (`--failed`), the same in a run, in its preview and in
`postsync show` of its record."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from runner.cli.terminal import INFO, WARNING
from runner.core.errors import UsageError
from runner.core.text import excerpt, printable
from runner.record.model import FileOutcome
from runner.step.protocol import Done

#: --failed shows at most this many failed lines of a file (`--failed-limit`): enough to
#: see what went wrong (a missing course fails every line naming it), few enough for a
#: mail; the file's report has them all
FAILED_LIMIT = 20
INDENT = " " * 8


@dataclass(frozen=True)
class LinesView:
    """Which lines of each control file the text output shows under it."""

    #: -v: every line's outcome, as the file's report has it
    every: bool = False
    #: --failed: each failed line as it may be shown (a password as ***), and why
    failed: bool = False
    #: --failed: at most this many lines per file (None: all of them)
    limit: int | None = FAILED_LIMIT

    @property
    def shown(self) -> bool:
        return self.every or self.failed


def lines_view(*, every: bool, failed: bool, limit: int | None) -> LinesView:
    """What -v, --failed and --failed-limit (N, 0 for all, None when not given: it
    implies --failed) ask for."""
    failed = failed or limit is not None
    if every and failed:
        raise UsageError("-v shows every line, --failed only the failed ones: give one of them")
    return LinesView(every, failed, FAILED_LIMIT if limit is None else limit or None)


def sync_outcome(done: Done) -> FileOutcome | None:
    """The control file a sync step's `sync FILE` item tells of (None for other items:
    a file left for the next run, a warning, a file rejected unread)."""
    data = done.action.data
    return data if done.action.verb == "sync" and isinstance(data, FileOutcome) else None


def file_lines(
    outcome: FileOutcome, view: LinesView, report: str | None
) -> Iterator[tuple[str, int]]:
    """The lines to print under the file's `sync FILE` line, each with its journal
    priority; `report`: the file's report as users can open it (None: none outlives
    the command, as in a preview), named when --failed leaves lines out."""
    if view.every:
        yield from _outcomes(outcome)
    elif view.failed:
        yield from failed_lines(outcome, view.limit, report)


def _outcomes(outcome: FileOutcome) -> Iterator[tuple[str, int]]:
    """-v: each line's outcome, from the control file's report."""
    report = outcome.report
    if report is None or not report.is_file():
        return
    # "\n" only ends a line: a value's CR is shown escaped, never as a line
    with open(report, encoding="utf-8", errors="replace", newline="\n") as lines:
        for text in lines:
            text = printable(text.rstrip("\n"))
            yield f"{INDENT}{text}", WARNING if ": failed: " in text else INFO


def failed_lines(
    outcome: FileOutcome, limit: int | None, report: str | None
) -> Iterator[tuple[str, int]]:
    """--failed: each failed line's number and reason, then the line as the record keeps
    it for people (a users file's password as ***; a long line cut), the first `limit`."""
    failed = outcome.failed
    shown = failed if limit is None else failed[:limit]
    for line in shown:
        yield f"{INDENT}line {line.number}: failed: {printable(line.message)}", WARNING
        yield f"{INDENT}    {excerpt(printable(line.text(outcome.encoding)))}", WARNING
    more = len(failed) - len(shown)
    if more:
        where = f": see {report}" if report else ""
        yield (
            f"{INDENT}... and {more:,} more failed line{'s' * (more > 1)}{where}"
            " (--failed-limit all shows them all)",
            WARNING,
        )
