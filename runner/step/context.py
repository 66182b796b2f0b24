"""The explicit context passed to steps: the run's state (a step's template scope is in
runner.step.scope)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import StepError
from runner.record.model import FileOutcome, RunHeader
from runner.step.globs import ControlGlob
from runner.step.preview import Withheld
from runner.step.recovery import Recovery
from runner.storage.paths import (
    display,
)
from runner.storage.remote import RemotePath, Storage

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, NestedTransaction, RootTransaction
    from sqlalchemy.engine import URL

    from runner.db.tables import MoodleTables
    from runner.playbook.model import Playbook
    from runner.playbook.templating import Renderer


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class RunContext:
    """Everything a run knows; passed explicitly to every step."""

    playbook: Playbook
    run_id: str
    check: bool
    now: datetime
    area: Path
    roots: tuple[Path, ...]
    renderer: Renderer
    variables: dict[str, Any]
    environ: dict[str, str]
    #: control files that a sync step of the playbook would process (never purged)
    protected: frozenset[Path] = frozenset()
    #: every sync step's glob: a path one matches is a control file (never purged,
    #: never an archive), whenever it appeared
    control_globs: tuple[ControlGlob, ...] = ()
    #: files this run stored (archives, reports, retry files): never purged by it
    written: set[Path] = field(default_factory=set)
    failed_lines: int = 0
    lines_ok: int = 0
    #: groups and groupings clean_empty_groups deleted (a preview: would delete)
    groups_deleted: int = 0
    step_status: dict[str, str] = field(default_factory=dict)
    #: the database URL (a sqlalchemy URL, parsed before any change), if any
    database_url: URL | None = None
    prefix: str = "mdl_"
    #: what each sync step did with each control file
    files: list[FileOutcome] = field(default_factory=list)
    #: `roots:` in object storage, as (bucket, key prefix)
    remote_roots: tuple[tuple[str, str], ...] = ()
    #: the object store (runner.storage.remote.Storage) for s3:// destinations
    storage: Storage | None = None
    #: control file -> its archive (a Path or a RemotePath): verified (real run) or
    #: planned (preview)
    archives: dict[Path, Path | RemotePath] = field(default_factory=dict)
    #: control files whose archive a preview planned (not written, taken as verified)
    archives_planned: set[Path] = field(default_factory=set)
    #: print diffs of what is written (--diff): treatments compute them only then
    diff: bool = False
    #: the sync steps of the record that `postsync post` runs for (kept in its record)
    prior_steps: list[dict[str, Any]] = field(default_factory=list)
    #: what a killed run of the area left, removed before the steps (a preview: would
    #: be), as (target, detail) (runner.engine.leftovers)
    cleaned: list[tuple[str, str]] = field(default_factory=list)
    #: a preview's sync writes, kept in memory instead (runner.step.preview)
    withheld: Withheld | None = None
    #: every sync step of the run ran (a record without it is refused by `post`)
    sync_complete: bool = False
    #: the files killed runs of this area applied (runner.step.recovery)
    recovery: Recovery = field(default_factory=Recovery)
    _database: tuple[Engine, MoodleTables] | None = None
    _run_dir_made: bool = False
    #: a preview's one connection and run-wide transaction, rolled back at close
    _preview: tuple[Connection, RootTransaction] | None = None
    #: a preview's per-line reports: a private temporary directory, removed at close
    _preview_reports: str | None = None

    def __post_init__(self) -> None:
        if self.check and self.withheld is None:
            self.withheld = Withheld()

    @property
    def zone(self) -> tzinfo:
        """The playbook's time zone (`now` is always aware)."""
        zone = self.now.tzinfo
        assert zone is not None
        return zone

    def database_changes(self) -> int:
        """The changes this run made to the database (a preview: would make): lines a
        sync file changed (in part, for a failed line), groups and groupings deleted."""
        changed = sum(f.changed + f.partly for f in self.files if not f.error)
        return changed + self.groups_deleted

    @property
    def state_dir(self) -> Path:
        return self.area / ".postsync"

    @property
    def run_dir(self) -> Path:
        """AREA/.postsync/runs/RUN_ID: this run's reports (the record sits beside it)."""
        return self.state_dir / "runs" / self.run_id

    def header(self) -> RunHeader:
        """The run, as its record names it."""
        return RunHeader(
            self.run_id,
            self.playbook.file,
            self.playbook.name,
            self.check,
            self.now,
            self.area,
            self.run_dir.parent,
        )

    def report_path(self, control_file: Path) -> Path:
        """Where the sync writes a control file's report (a bounded, safe name). A
        preview writes nothing in the area: its reports go to a private temporary
        directory (for save_report's preview), removed when the run ends."""
        # any name Linux allows (bytes that are not UTF-8, 255 of them, a newline): the
        # report's name keeps only safe characters, bounded; NNN keeps it unique
        safe = _UNSAFE.sub("_", control_file.name)[:100]
        name = f"{len(self.files) + 1:03d}_{safe}.report"
        if self.check:
            if self._preview_reports is None:
                self._preview_reports = tempfile.mkdtemp(prefix="postsync-preview-")
            return Path(self._preview_reports) / name
        if not self._run_dir_made:
            # this run's own directory: made here, never one found in its place
            try:
                os.mkdir(self.run_dir, 0o750)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(self.run_dir).st_mode):
                    raise StepError(f"{self.run_dir} exists and is not a directory") from None
            self._run_dir_made = True
        return self.run_dir / name

    def database(self) -> tuple[Engine, MoodleTables]:
        """(Engine, MoodleTables), connected on first use; StepError without a database."""
        if self._database is None:
            from runner.db.connect import Timeouts, connect
            from runner.db.tables import missing_tables, moodle_tables

            if self.database_url is None:
                raise StepError("this step needs `database:` in the playbook")
            timeouts = Timeouts(self.playbook.connect_timeout, self.playbook.lock_timeout)
            engine = connect(
                self.database_url, must_exist=True, timeouts=timeouts, read_only=self.check
            )
            tables = moodle_tables(self.prefix)
            missing = missing_tables(engine, tables)
            if missing:
                engine.dispose()
                if len(missing) == len(tables.all):
                    raise StepError(
                        f"the database has no Moodle table with the prefix {self.prefix!r};"
                        " is `prefix:` in the playbook right? (Moodle's default is mdl_)"
                    )
                raise StepError(
                    f"the database has no {', '.join(missing)} (prefix {self.prefix!r}):"
                    " a Moodle site has them; a database an older `postsync db init` made"
                    " lacks the tables this version uses: make it again"
                )
            self._database = (engine, tables)
        return self._database

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Unit]:
        """One unit of database work (a control file, a group cleanup).

        A real run commits each unit on its own connection. A preview reads through one
        read-only connection, every unit in a savepoint of one run-wide transaction that
        is rolled back when the run ends; it writes nothing (the sync keeps its changes in
        `withheld`, which later steps read over the database).
        """
        engine, _tables = self.database()
        if not self.check:
            with engine.connect() as conn:
                unit = Unit(conn, conn.begin())
                try:
                    yield unit
                except BaseException:
                    unit.rollback()
                    raise
                unit.commit()
            return
        if self._preview is None:
            conn = engine.connect()
            self._preview = (conn, conn.begin())
        conn = self._preview[0]
        unit = Unit(conn, conn.begin_nested())
        try:
            yield unit
        except BaseException:
            unit.rollback()
            raise
        unit.commit()

    def close(self) -> None:
        """Ends the database work (a preview's transaction rolled back) and removes a
        preview's temporary reports; the run's results stay."""
        if self._preview_reports is not None:
            shutil.rmtree(self._preview_reports, ignore_errors=True)
            self._preview_reports = None
        if self._preview is not None:
            conn, outer = self._preview
            self._preview = None
            with contextlib.suppress(Exception):
                outer.rollback()
            conn.close()
        if self._database is not None:
            self._database[0].dispose()
            self._database = None

    @property
    def failed(self) -> bool:
        """A control-file line or a step failed so far."""
        return self.failed_lines > 0 or "failed" in self.step_status.values()

    def template_context(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        context: dict[str, Any] = {
            "now": self.now,
            "env": self.environ,
            "area": str(self.area),
            "run": {
                "id": self.run_id,
                "check": self.check,
                "failed_lines": self.failed_lines,
                "lines_ok": self.lines_ok,
                "failed": self.failed,
                "steps": dict(self.step_status),
            },
            **self.variables,
        }
        if extra:
            context.update(extra)
        return context

    def control_glob(self, path: str | Path) -> ControlGlob | None:
        """The sync step's glob that would read `path`, if one would."""
        text = str(path)
        return next((g for g in self.control_globs if g.matches(text)), None)

    def display(self, path: Path | RemotePath) -> str:
        return str(path) if isinstance(path, RemotePath) else display(path, self.area)


def file_context(path: Path, command: str) -> dict[str, str]:
    """`file` in per-file treatments' templates (`stem` and `suffix` as pathlib's)."""
    text = str(path)
    parent, name = os.path.split(text)
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if 0 < dot < len(name) - 1 else (name, "")
    return {
        "path": text,
        "name": name,
        "stem": stem,
        "suffix": suffix,
        "parent": parent or ".",
        "command": command,
    }


@dataclass
class Unit:
    """A connection inside a transaction (or a preview's savepoint)."""

    conn: Connection
    _transaction: RootTransaction | NestedTransaction
    _done: bool = False

    def rollback(self) -> None:
        if not self._done:
            self._done = True
            if self._transaction.is_active:
                self._transaction.rollback()

    def commit(self) -> None:
        if not self._done:
            self._done = True
            self._transaction.commit()
