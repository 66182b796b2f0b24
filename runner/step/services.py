"""What a run opens: the database, the object store and the directory of its reports,
each opened on first use and all closed in one place (`Services.close`, when the run
ends).

Steps see them through the small protocols below (`Database`, `ReportFiles`,
`ObjectStore`): a step's signature says which it uses."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from runner.core.errors import StepError
from runner.storage.remote import Storage

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, NestedTransaction, RootTransaction

    from runner.db.tables import MoodleTables
    from runner.db.url import DatabaseUrl


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


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

    def checkpoint(self) -> None:
        """Commit what is done so far and go on in a new transaction (a real run's
        root transaction only: a file committed in chunks)."""
        assert not self._done
        self._transaction.commit()
        self._transaction = self.conn.begin()


@contextlib.contextmanager
def _settled(unit: Unit) -> Iterator[Unit]:
    """The unit committed when its block ends, rolled back when it raises."""
    try:
        yield unit
    except BaseException:
        unit.rollback()
        raise
    unit.commit()


class Database(Protocol):
    """The site's database: connected on first use."""

    def database(self) -> tuple[Engine, MoodleTables]: ...
    def transaction(self) -> contextlib.AbstractContextManager[Unit]: ...


class ReportFiles(Protocol):
    """Where a sync writes each control file's report (and its journal part beside it),
    and a post-treatment its part of the journal."""

    def report_path(self, control_file: Path, number: int) -> Path: ...
    def journal_part(self, step: str) -> Path: ...


class SyncServices(Database, ReportFiles, Protocol):
    """What a step that changes rows uses: the database, and where its reports and
    journal parts go."""


class ObjectStore(Protocol):
    """The object store of s3:// destinations (its client made on first use)."""

    @property
    def storage(self) -> Storage: ...


@dataclass(frozen=True)
class DatabaseSettings:
    """How to reach the database: the playbook's `database:`, `prefix:` and timeouts."""

    url: DatabaseUrl | None
    prefix: str
    connect_timeout: float
    lock_timeout: float


class Services:
    """The run's database, object store and report directory (the concrete type of the
    protocols above)."""

    def __init__(
        self, database: DatabaseSettings, storage: Storage, run_dir: Path, *, preview: bool
    ) -> None:
        self._settings = database
        self._storage = storage
        self._run_dir = run_dir
        self._preview_mode = preview
        self._database: tuple[Engine, MoodleTables] | None = None
        self._run_dir_made = False
        #: a preview's one connection and run-wide transaction, rolled back at close
        self._preview: tuple[Connection, RootTransaction] | None = None
        #: a preview's per-line reports: a private temporary directory, removed at close
        self._preview_reports: str | None = None

    @property
    def storage(self) -> Storage:
        return self._storage

    def report_path(self, control_file: Path, number: int) -> Path:
        """Where the sync writes a control file's report (a bounded, safe name; `number`:
        the file's place in the run). A preview writes nothing in the area: its reports
        go to a private temporary directory (for save_report's preview), removed when
        the run ends."""
        # any name Linux allows (bytes that are not UTF-8, 255 of them, a newline): the
        # report's name keeps only safe characters, bounded; NNN keeps it unique
        safe = _UNSAFE.sub("_", control_file.name)[:100]
        return self._directory() / f"{number:03d}_{safe}.report"

    def journal_part(self, step: str) -> Path:
        """A post-treatment's part of the change journal: NNN_STEP.journal in the run's
        directory (a preview's: its temporary one), numbered after every report and part
        already there (`postsync post` adds its own after the run's)."""
        directory = self._directory()
        taken = [
            int(name[:3])
            for name in os.listdir(directory)
            if name[:3].isdigit() and name[3:4] == "_"
        ]
        return directory / f"{max(taken, default=0) + 1:03d}_{step}.journal"

    def _directory(self) -> Path:
        """The run's directory (made on first use), or a preview's temporary one."""
        if self._preview_mode:
            if self._preview_reports is None:
                self._preview_reports = tempfile.mkdtemp(prefix="postsync-preview-")
            return Path(self._preview_reports)
        if not self._run_dir_made:
            # this run's own directory: made here, never one found in its place
            try:
                os.mkdir(self._run_dir, 0o750)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(self._run_dir).st_mode):
                    raise StepError(f"{self._run_dir} exists and is not a directory") from None
            self._run_dir_made = True
        return self._run_dir

    def database(self) -> tuple[Engine, MoodleTables]:
        """(Engine, MoodleTables), connected on first use; StepError without a database."""
        if self._database is None:
            from runner.db.connect import Timeouts, connect, sqlalchemy_url
            from runner.db.tables import missing_tables, moodle_tables

            settings = self._settings
            if settings.url is None:
                raise StepError("this step needs `database:` in the playbook")
            timeouts = Timeouts(settings.connect_timeout, settings.lock_timeout)
            engine = connect(
                sqlalchemy_url(settings.url),
                must_exist=True,
                timeouts=timeouts,
                read_only=self._preview_mode,
            )
            tables = moodle_tables(settings.prefix)
            missing = missing_tables(engine, tables)
            if missing:
                engine.dispose()
                if len(missing) == len(tables.all):
                    raise StepError(
                        f"the database has no Moodle table with the prefix {settings.prefix!r};"
                        " is `prefix:` in the playbook right? (Moodle's default is mdl_)"
                    )
                raise StepError(
                    f"the database has no {', '.join(missing)} (prefix {settings.prefix!r}):"
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
        the ledger's `withheld`, which later steps read over the database).
        """
        engine, _tables = self.database()
        if not self._preview_mode:
            with engine.connect() as conn, _settled(Unit(conn, conn.begin())) as unit:
                yield unit
            return
        if self._preview is None:
            conn = engine.connect()
            self._preview = (conn, conn.begin())
        conn = self._preview[0]
        with _settled(Unit(conn, conn.begin_nested())) as unit:
            yield unit

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
        self._storage.close()
