"""What is fixed once a run is prepared: its identity and clock, its area and roots,
the template renderer, variables and environment, the control files and globs.

Steps read it; nothing changes it (runner.step.ledger holds what a run accumulates,
runner.step.services the database and the object store)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from runner.record.lineage import RetryOf
from runner.record.model import RunHeader
from runner.step.globs import ControlGlob, feed_name
from runner.storage.paths import display
from runner.storage.remote import RemotePath

if TYPE_CHECKING:
    from runner.db.url import DatabaseUrl
    from runner.playbook.model import Playbook
    from runner.playbook.templating import Renderer


@dataclass(frozen=True)
class RunFacts:
    """The run as prepared (runner.engine.prepare): read by every step, changed by none."""

    playbook: Playbook
    run_id: str
    check: bool
    #: always aware (the playbook's `timezone:`, or the machine's)
    now: datetime
    area: Path
    roots: tuple[Path, ...]
    renderer: Renderer
    #: `vars:` and `-e`, rendered in order
    variables: Mapping[str, object]
    environ: Mapping[str, str]
    #: `roots:` in object storage, as (bucket, key prefix)
    remote_roots: tuple[tuple[str, str], ...] = ()
    #: the database URL (parsed before any change), if any
    database_url: DatabaseUrl | None = None
    prefix: str = "mdl_"
    #: print diffs of what is written (--diff): treatments compute them only then
    diff: bool = False
    #: control files that a sync step of the playbook would process (never purged)
    protected: frozenset[Path] = frozenset()
    #: every sync step's glob: a path one matches is a control file (never purged,
    #: never an archive), whenever it appeared
    control_globs: tuple[ControlGlob, ...] = ()
    #: the sync steps of the record that `postsync post` runs for (kept in its record)
    prior_steps: tuple[Mapping[str, object], ...] = ()
    #: the machine's name (what a notification says the run ran on)
    host: str = ""
    #: `postsync retry` (and `post` of a retry's record): the run whose failed lines
    #: the sync steps apply again, instead of the files their globs list
    retry: RetryOf | None = None
    #: --full-reconcile: the snapshot steps that diff compare their whole file instead
    full_reconcile: bool = False

    @property
    def zone(self) -> tzinfo:
        """The playbook's time zone (`now` is always aware)."""
        zone = self.now.tzinfo
        assert zone is not None
        return zone

    @property
    def state_dir(self) -> Path:
        return self.area / ".postsync"

    @property
    def runs_dir(self) -> Path:
        """AREA/.postsync/runs: the records, each run's directory beside its record."""
        return self.state_dir / "runs"

    @property
    def run_dir(self) -> Path:
        """AREA/.postsync/runs/RUN_ID: this run's reports and its change journal (the
        record sits beside it)."""
        return self.runs_dir / self.run_id

    def header(self) -> RunHeader:
        """The run, as its record names it."""
        return RunHeader(
            self.run_id,
            self.playbook.file,
            self.playbook.name,
            self.check,
            self.now,
            self.area,
            self.runs_dir,
        )

    def control_glob(self, path: str | Path) -> ControlGlob | None:
        """The sync step's glob that would read `path`, if one would."""
        text = str(path)
        return next((g for g in self.control_globs if g.matches(text)), None)

    def display(self, path: Path | RemotePath) -> str:
        return str(path) if isinstance(path, RemotePath) else display(path, self.area)


def _split(name: str) -> tuple[str, str]:
    """(stem, suffix) as pathlib's."""
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if 0 < dot < len(name) - 1 else (name, "")


def file_context(path: Path, command: str) -> dict[str, str]:
    """`file` in per-file treatments' templates (`stem` and `suffix` as pathlib's;
    `feed_stem`: the stem of the feed's own file, `enrols` for enrols.csv and for its
    retry file enrols_tryback_20261204-0230.csv, so that a retry of a retry file is
    named as the feed's)."""
    text = str(path)
    parent, name = os.path.split(text)
    stem, suffix = _split(name)
    feed = feed_name(name)
    return {
        "path": text,
        "name": name,
        "stem": stem,
        "suffix": suffix,
        "feed_stem": stem if feed is None else _split(feed)[0],
        "parent": parent or ".",
        "command": command,
    }
