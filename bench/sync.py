"""B4 and B7: the sync of a million-line enrolment file (SQLite, PostgreSQL) and its
`--check`, against csv + executemany of the rows a real run writes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.harness import POSTSYNC, PY, ROOT, Result, Timing, alternate, check_applied, timed
from bench.site import build_site, enrolment_file

SYNC_PLAYBOOK = """\
name: B4
area: area
database: "{url}"
sync:
  - command: enrolments
    file: enrols.csv
    settle_seconds: 0
"""


# The baseline of a sync (the issue's "plain `csv` parsing + `executemany` of the same
# rows"): the rows the sync wrote (dumped to CSV from a real run's database), parsed
# with `csv` and inserted with the driver's own `executemany`, 2,000 rows a call, in
# one transaction, on a connection set up as postsync's (SQLite: the same PRAGMAs).
BASELINE = """
import csv, sys
kind, target, folder = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "sqlite":
    import sqlite3
    con = sqlite3.connect(target, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-32768"):
        con.execute("PRAGMA " + pragma)
    mark = "?"
else:
    import psycopg
    con = psycopg.connect(target)
    mark = "%s"
cur = con.cursor()
if kind == "sqlite":
    cur.execute("BEGIN")
for name in ("user_enrolments", "role_assignments", "groups_members"):
    with open(f"{folder}/{name}.csv", newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        columns = next(rows)
        texts = [c == "component" for c in columns]
        sql = (f"INSERT INTO mdl_{name} ({', '.join(columns)})"
               f" VALUES ({', '.join([mark] * len(columns))})")
        batch = []
        for row in rows:
            batch.append([v if t else int(v) for v, t in zip(row, texts)])
            if len(batch) == 2000:
                cur.executemany(sql, batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
con.commit() if kind != "sqlite" else cur.execute("COMMIT")
"""


# The floor of a sync: the rows it wrote, inserted again by the same statements
# (runner.db.raw) in as many batches, one transaction, without reading, parsing or
# simulating anything. Times itself: loading the rows is not part of the work.
EXTRACT = """
import csv, pickle, sys
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from sqlalchemy import select
from runner.db.connect import connect, parse_url
from runner.db.tables import moodle_tables
t = moodle_tables()
engine = connect(parse_url(sys.argv[1], Path.cwd()))
folder = Path(sys.argv[2])
folder.mkdir(exist_ok=True)
data = {}
with engine.connect() as conn:
    for name in ("user_enrolments", "role_assignments", "groups_members"):
        table = getattr(t, name)
        columns = [c.name for c in table.c if c.name != "id"]
        rows = conn.execute(select(*[table.c[c] for c in columns]).order_by(table.c.id)).all()
        data[name] = (columns, [tuple(r) for r in rows])
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            writer.writerows(data[name][1])
with open(folder / "rows.pickle", "wb") as out:
    pickle.dump(data, out)
(folder / "count").write_text(str(sum(len(rows) for _, rows in data.values())))
"""


REPLAY = """
import os, pickle, sys, time
sys.path.insert(0, sys.argv[4])
from pathlib import Path
from runner.db.connect import connect, parse_url
from runner.db.tables import moodle_tables
from runner.db.raw import Raw
with open(sys.argv[2], "rb") as f:
    data = pickle.load(f)
batches = int(sys.argv[3])
t = moodle_tables()
engine = connect(parse_url(sys.argv[1], Path.cwd()))
start = time.perf_counter()
with engine.begin() as conn:
    raw = Raw(conn)
    for i in range(batches):
        for name, (columns, rows) in data.items():
            size = -(-len(rows) // batches)
            raw.run(raw.inserts(getattr(t, name), columns, rows[i * size : (i + 1) * size]))
with open(os.environ["BENCH_SELF_TIME"], "w") as out:
    out.write(str(time.perf_counter() - start))
"""


@dataclass
class SyncSetup:
    url_for: Callable[[str], str]
    kind: str
    #: removes a database made by `url_for` (a 1,000,000-line site is about 150 MB)
    drop: Callable[[str], None]
    #: (kind, target) for the baseline's plain driver: ("sqlite", path) or
    #: ("postgresql", libpq connection string)
    driver: Callable[[str], tuple[str, str]]


def drop_sqlite(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def sqlite_driver(url: str) -> tuple[str, str]:
    return "sqlite", url.removeprefix("sqlite:///")


def postgresql_driver(url: str) -> tuple[str, str]:
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql")
    return "postgresql", plain.render_as_string(hide_password=False)


class LockProbe:
    """The longest time a transaction of the sync held row locks on PostgreSQL: from its
    first write (when the server gives it a transaction id) to its commit, polled
    every 20 ms from a second connection while the sync runs. A Moodle request that
    writes a row the sync wrote waits at most that long; other rows do not wait."""

    def __init__(self, url: str) -> None:
        import threading

        from sqlalchemy import create_engine

        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.longest = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        sql = (
            "SELECT COALESCE(MAX(EXTRACT(EPOCH FROM clock_timestamp() - xact_start)), 0)"
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while not self.stop.wait(0.02):
                held = float(conn.exec_driver_sql(sql).scalar() or 0)
                self.longest = max(self.longest, held)

    def __enter__(self) -> LockProbe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()


def b4_b7(work: Path, rounds: int, scale: float, setup: SyncSetup) -> list[Result]:
    lines = max(10_000, int(1_000_000 * scale))
    users, courses = 50_000, 2_000
    data = work / f"b4-{setup.kind}"
    data.mkdir(exist_ok=True)
    control = data / "enrols.csv"
    small = data / "enrols-small.csv"
    if not control.exists():
        enrolment_file(control, lines, users=users, courses=courses)
        enrolment_file(small, lines // 10, users=users, courses=courses)
    counter = iter(range(1_000_000))

    def fresh(file: Path) -> tuple[Path, str]:
        root = data / f"run{next(counter)}"
        (root / "area").mkdir(parents=True)
        shutil.copy(file, root / "area" / "enrols.csv")
        url = setup.url_for(f"b4{next(counter)}")
        build_site(url, users=users, courses=courses)
        (root / "playbook.yml").write_text(SYNC_PLAYBOOK.format(url=url))
        return root, url

    urls: list[str] = []

    rows = data / "rows"  # the rows of a real run (the first one): CSV files and a pickle

    def ours(file: Path = control, *extra: str) -> Timing:
        root, url = fresh(file)
        t = timed([*POSTSYNC, "run", "playbook.yml", *extra], root)
        if "--check" not in extra:
            check_applied(root / "area", lines if file == control else lines // 10)
        shutil.rmtree(root, ignore_errors=True)
        if urls or rows.exists() or extra or file != control:
            setup.drop(url)
        else:
            urls.append(url)  # the first real run: its rows make the baseline's input
        return t

    def extract() -> None:
        if not rows.exists():
            if not urls:
                ours()
            subprocess.run([PY, "-c", EXTRACT, urls[0], str(rows), str(ROOT)], check=True)
            setup.drop(urls[0])

    def baseline() -> Timing:
        extract()
        root, url = fresh(control)
        t = timed([PY, "-c", BASELINE, *setup.driver(url), str(rows)], root)
        shutil.rmtree(root, ignore_errors=True)
        setup.drop(url)
        return t

    def floor() -> Timing:
        extract()
        root, url = fresh(control)
        batches = str(-(-lines // 2000))
        t = timed([PY, "-c", REPLAY, url, str(rows / "rows.pickle"), batches, str(ROOT)], root)
        shutil.rmtree(root, ignore_errors=True)
        setup.drop(url)
        return t

    r4 = Result(
        f"B4-{setup.kind}",
        f"sync {lines:,} enrolment lines on {setup.kind}",
        "<= 4x",
        limit=4.0,
    )
    r4.floor_label = (
        "the same rows inserted by postsync's own statements (one per table and batch),"
        " one transaction, timed without starting Python or reading anything"
    )
    alternate(rounds, ours, baseline, r4, floor)
    rate = lines / r4.ours_median
    written = int((rows / "count").read_text())
    r4.extra["baseline"] = (
        f"the {written:,} rows the sync wrote (in Moodle's three tables, with their"
        " indexes), read with `csv` and inserted with the driver's `executemany`, 2,000"
        " rows a call, one transaction"
    )
    r4.extra["lines/s"] = f"{rate:,.0f}"
    if setup.kind == "SQLite":
        base_rate = lines / r4.base_median
        best = lines / r4.floor_median
        r4.notes.append(
            f"{rate:,.0f} lines/s (target >= 50,000): {'met' if rate >= 50_000 else 'NOT met'};"
            f" the baseline alone runs at {base_rate:,.0f} lines/s and postsync's own"
            f" statements alone at {best:,.0f}"
        )
    small_rss = ours(small).maxrss_kb
    big_rss = max(t.maxrss_kb for t in r4.ours)
    r4.extra["peak RSS"] = (
        f"{small_rss / 1024:.0f} MB at {lines // 10:,} lines, {big_rss / 1024:.0f} MB at {lines:,}"
    )
    r4.notes.append(
        f"peak RSS {big_rss / 1024:.0f} MB (target <= 200 MB:"
        f" {'met' if big_rss <= 200 * 1024 else 'NOT met'}),"
        f" {big_rss / max(small_rss, 1):.2f}x the {lines // 10:,}-line run"
    )
    if setup.kind == "PostgreSQL":
        holds = []
        for every in ("", "    commit_every: {seconds: 2}\n"):
            root, url = fresh(control)
            (root / "playbook.yml").write_text(SYNC_PLAYBOOK.format(url=url) + every)
            with LockProbe(url) as probe:
                held = timed([*POSTSYNC, "run", "playbook.yml"], root)
            check_applied(root / "area", lines)
            shutil.rmtree(root, ignore_errors=True)
            setup.drop(url)
            holds.append((probe.longest, held.seconds))
        (one, one_run), (chunk, chunk_run) = holds
        r4.extra["longest lock hold"] = (
            f"{one:.1f} s of a {one_run:.1f} s run: the file's one transaction, from its"
            f" first write to its commit (rows the file does not write are never locked);"
            f" with `commit_every: {{seconds: 2}}`: {chunk:.1f} s of a {chunk_run:.1f} s run"
        )
    out = [r4]
    if setup.kind == "SQLite":
        r7 = Result(
            "B7", f"`--check` vs the real run on B4 ({lines:,} lines, SQLite)", "<= 1.2x", limit=1.2
        )
        alternate(rounds, lambda: ours(control, "--check"), lambda: ours(control), r7)
        r7.extra["baseline"] = "the real run"
        out.append(r7)
    return out
