"""The run's change journal: its place, ready for the row-level changes a run makes
(nothing writes it yet).

A run's journal is one file in the run's own directory, beside its control files'
reports: `AREA/.postsync/runs/RUN_ID/journal.jsonl`. There it shares their life without
more machinery: the record names its run, so `postsync post RECORD` finds it; a record
pruned after `keep_records_days` takes its directory, journal included; the directory of
a run killed before its first record is a leftover the next run removes
(runner.engine.leftovers). One line per change, appended as the sync commits, so that a
run of a million lines never holds its journal in memory.
"""

from __future__ import annotations

from pathlib import Path

#: the journal's name in the run's directory
JOURNAL_NAME = "journal.jsonl"


def journal_path(runs_dir: Path, run_id: str) -> Path:
    """Where run `run_id` of the area whose records are in `runs_dir` keeps its journal."""
    return runs_dir / run_id / JOURNAL_NAME
