"""`postsync post RECORD`: the playbook's post-treatments for a saved run record."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from runner.core.errors import PlaybookError
from runner.engine.execute import execute_steps
from runner.engine.prepare import build_context
from runner.engine.results import Reporter, RunOptions, RunResult, check_tags, selected
from runner.playbook.model import Playbook, load_playbook
from runner.record.check import check_header, check_place
from runner.record.lineage import RetryOf
from runner.record.model import FileOutcome
from runner.record.store import LoadedRecord, load_record
from runner.step.context import Run
from runner.step.ledger import Ledger


def saved_run(
    record_file: Path,
    options: RunOptions,
    playbook_file: Path | None,
    *,
    previewed: str | None,
    unfinished: str,
    same_run: bool,
) -> tuple[LoadedRecord, Playbook, Run, list[FileOutcome]]:
    """A saved run record, checked whole, its playbook (`playbook_file`, or the one it
    names) and a run of it on the record's area (`same_run`: as part of the record's
    run, with its id and `now`; else a new run), and the record's control files.
    Why a --check run's record (`previewed`; None: taken) and a record whose sync did
    not finish (`unfinished`) are refused (exit 4)."""
    record = load_record(record_file)
    check_header(record)  # before its times and run id are used for anything
    problem = record.problem
    if record.data["check"] and previewed is not None:
        raise PlaybookError([problem("check", previewed)])
    if not record.data.get("sync_complete") and record.data["control_files"]:
        raise PlaybookError([problem("sync_complete", unfinished)])
    path = playbook_file or Path(record.data["playbook"])
    if not path.is_file():
        raise PlaybookError(
            [problem("playbook", f"the playbook {path} is gone; give it with --playbook")]
        )
    playbook = load_playbook(path)
    check_tags(playbook.steps, options.tags, options.skip_tags)
    run = build_context(
        playbook,
        options,
        now=datetime.fromisoformat(record.data["started"]) if same_run else None,
        run_id=record.data["run_id"] if same_run else None,
    )
    area = run.facts.area
    if area != Path(record.data["area"]):
        raise PlaybookError(
            [
                problem(
                    "area",
                    f"the record is of area {record.data['area']}, the playbook's area is {area}",
                )
            ]
        )
    check_place(record, area)
    try:
        files = [FileOutcome.from_json(f, record.file.parent) for f in record.data["control_files"]]
    except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise PlaybookError(
            [problem("control_files", f"malformed entry ({type(exc).__name__}: {exc})")]
        ) from None
    return record, playbook, run, files


def run_post(
    record_file: Path,
    options: RunOptions,
    reporter: Reporter,
    playbook_file: Path | None = None,
) -> RunResult:
    """The playbook's post-treatments for a saved run record (`postsync post RECORD`).

    They run as part of that run: same run id, same `now` (so the same archive and
    report names), the record's control files and outcomes; the record's post-treatment
    steps are replaced by these. For a retry's record (`postsync retry`), those that do
    not run for a retry are skipped, as in the retry.
    """
    record, playbook, run, files = saved_run(
        record_file,
        options,
        playbook_file,
        previewed=None
        if options.check
        else "this record is from a --check run: nothing was synced, so there is"
        " nothing to post-process (run the playbook, or add --check)",
        unfinished="the run that saved this record did not finish its sync steps (it was"
        " killed, interrupted, or a failed step stopped it): post-treatments would"
        " act on a half-done sync (e.g. delete groups a file not yet applied"
        " fills). Run the playbook again instead: the files that run applied are"
        " known as applied and are post-treated without being applied twice",
        same_run=True,
    )
    # the record's run: its files' outcomes, its sync steps
    run.ledger = Ledger(preview=options.check, files=files)
    prior = tuple(s for s in record.data["steps"] if s["section"] == "sync")
    retries = record.data.get("retries")
    retry = None if not retries else RetryOf(str(retries), run.facts.now, {})
    run.facts = replace(run.facts, prior_steps=prior, retry=retry)
    steps = [
        s for s in playbook.post_treatments if selected(s.tags, options.tags, options.skip_tags)
    ]
    return execute_steps(run, steps, options, reporter)
