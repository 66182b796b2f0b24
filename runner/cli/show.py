"""`postsync show RECORD`: what a saved run did, told as its run told it: the run, its
steps, each control file's `sync FILE` line and, with --failed, its failed lines."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from runner.cli.lines import LinesView, failed_lines
from runner.cli.output import item_text, recap_line, step_line
from runner.cli.terminal import INFO, WARNING, Printer, status_priority
from runner.core.errors import Exit
from runner.core.text import plural, printable
from runner.record.model import FileOutcome
from runner.record.store import load_record
from runner.step.protocol import Action, Done
from runner.storage.paths import display

STATUSES = ("ok", "changed", "warning", "skipped", "failed")


def show_record(path: Path, view: LinesView, out: IO[str] | None = None) -> int:
    """Print the record at `path` (exit 4 when it is not a run record); reads nothing
    else: the reports it names are named, not opened."""
    data = load_record(path).data
    area = Path(data["area"])
    # where the run kept the reports, as it named them (a copied record names them too)
    runs_dir = area / ".postsync" / "runs"
    printer = Printer(out)
    printer.write(_header(data))
    for step in data["steps"]:
        status = step["status"]
        line = step_line(printer, status, step["name"], step.get("detail", ""))
        printer.write(line, status_priority(status))
    files = [FileOutcome.from_json(entry, runs_dir) for entry in data["control_files"]]
    if files:
        printer.write(f"FILES    {plural(len(files), 'control file')}")
    for outcome in files:
        done = Done(Action("sync", display(outcome.path, area), outcome.summary()))
        lines = [(f"    {item_text(done)}", WARNING if outcome.failed else INFO)]
        if view.failed:
            report = display(outcome.report, area) if outcome.report else None
            lines += failed_lines(outcome, view.limit, report)
        for text, priority in lines:
            printer.write(text, priority)
    statuses = [step["status"] for step in data["steps"]]
    counts: dict[str, int] = {status: statuses.count(status) for status in STATUSES}
    counts["lines_ok"] = sum(f.changed + f.unchanged for f in files if not f.error)
    counts["lines_failed"] = sum(len(f.failed) for f in files)
    printer.write(recap_line(counts))
    return int(Exit.OK)


def _header(data: dict[str, Any]) -> str:
    """The run: its id, playbook, times, and whether it ran to its end."""
    if data["finished"] is None:
        end = "not finished: still running, or killed"
    elif data.get("complete"):
        end = f"finished {data['finished']}: every step ran"
    else:
        end = (
            f"finished {data['finished']}: not every step ran (left out by --tags, stopped"
            " by a failed step, or interrupted)"
        )
    if data["control_files"] and not data.get("sync_complete"):
        end += "; its sync did not finish"
    preview = " (a preview)" if data["check"] else ""
    run = f"RUN      {data['run_id']}  {data['name']}  (playbook {data['playbook']}){preview}"
    return printable(run) + "\n    " + printable(f"started {data['started']}, {end}")
