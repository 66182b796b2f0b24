"""postsync benchmarks, each run side by side with its baseline in alternating order.

    python bench/run.py                 # everything, writes bench/RESULTS.md
    python bench/run.py --only B1,B3    # some workloads
    python bench/run.py --scale 0.1     # smaller data (a quick look; not for RESULTS.md)

Every timing is a whole command in a fresh process (setup excluded), repeated
`--rounds` times with the workload and its baseline alternating which goes first; the
results are medians and the ratio workload/baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.site import build_site, enrolment_file  # noqa: E402

PY = sys.executable
POSTSYNC = [PY, "-m", "runner"]


@dataclass
class Timing:
    seconds: float
    maxrss_kb: int = 0


# Runs one command and writes "seconds maxrss_kb exit_code" to a file. A small process
# of its own: a child's peak RSS starts from its parent's at fork, so the bench's own
# memory (the generated data) would otherwise be counted as the command's.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write(f"{elapsed} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Timing:
    """Wall time and peak RSS of one command (its own process).

    The setup's writes are flushed first, so that neither side pays for them. A
    command that times itself (a floor that must leave out its loading) writes its
    seconds to the file named by $BENCH_SELF_TIME, which then replaces the wall time.
    """
    os.sync()
    with tempfile.TemporaryDirectory(prefix="postsync-timed-") as tmp:
        result, own = Path(tmp) / "result", Path(tmp) / "own"
        proc = subprocess.run(
            [PY, "-c", LAUNCHER, str(result), *cmd],
            cwd=cwd,
            env={**(env or os.environ), "BENCH_SELF_TIME": str(own)},
            stderr=subprocess.PIPE,
            check=False,
        )
        if not result.exists():
            raise SystemExit(f"{' '.join(cmd)}: {proc.stderr.decode()[-2000:]}")
        seconds, maxrss, code = result.read_text().split()
        if int(code) not in (0, 2):
            raise SystemExit(f"{' '.join(cmd)} failed ({code}): {proc.stderr.decode()[-2000:]}")
        if own.exists():
            seconds = own.read_text()
    return Timing(float(seconds), int(maxrss))


@dataclass
class Result:
    key: str
    title: str
    target: str
    ours: list[Timing] = field(default_factory=list)
    base: list[Timing] = field(default_factory=list)
    limit: float | None = None  # ratio target
    notes: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    #: a measured floor: what no implementation of the workload can go below (the
    #: same command on an empty input, or the database statements alone)
    floor: list[Timing] = field(default_factory=list)
    floor_label: str = ""
    #: the optional column: the same work with ansible-playbook, on a sample of the
    #: files (Ansible takes about half a second a file), and the factor to the whole
    ansible: list[Timing] = field(default_factory=list)
    ansible_sample: int = 0
    ansible_factor: float = 1.0

    @property
    def ansible_extrapolated(self) -> float:
        return statistics.median(t.seconds for t in self.ansible) * self.ansible_factor

    @property
    def ours_median(self) -> float:
        return statistics.median(t.seconds for t in self.ours)

    @property
    def base_median(self) -> float:
        return statistics.median(t.seconds for t in self.base)

    @property
    def ratio(self) -> float:
        return self.ours_median / self.base_median

    @property
    def met(self) -> bool | None:
        return None if self.limit is None else self.ratio <= self.limit

    @property
    def floor_median(self) -> float:
        return statistics.median(t.seconds for t in self.floor)

    @property
    def below_floor(self) -> bool:
        """The target asks for less time than the measured floor takes."""
        return bool(self.floor and self.limit and self.floor_median > self.limit * self.base_median)

    def verdict(self) -> str:
        if self.met is None:
            return ""
        if self.met:
            return "yes"
        return "no: below the floor" if self.below_floor else "**no**"


def alternate(
    rounds: int,
    ours: Callable[[], Timing],
    base: Callable[[], Timing],
    result: Result,
    floor: Callable[[], Timing] | None = None,
) -> Result:
    """Run each side `rounds` times, rotating which goes first."""
    sides: list[tuple[list[Timing], Callable[[], Timing]]] = [
        (result.ours, ours),
        (result.base, base),
    ]
    if floor is not None:
        sides.append((result.floor, floor))
    for r in range(rounds):
        shift = r % len(sides)
        for timings, run in sides[shift:] + sides[:shift]:
            timings.append(run())
    return result


# -- B1 startup ----------------------------------------------------------------------


def b1(work: Path, rounds: int) -> list[Result]:
    nightly = str(ROOT / "playbooks" / "nightly.yml")
    r = Result("B1", "startup: `postsync validate` on the nightly example", "<= 2x", limit=2.0)
    alternate(
        rounds * 3,
        lambda: timed([*POSTSYNC, "validate", nightly], work),
        lambda: timed([PY, "-c", "import yaml, jinja2, jsonschema"], work),
        r,
    )
    r.extra["baseline"] = '`python -c "import yaml, jinja2, jsonschema"`'
    v = Result("B1v", "`postsync --version`", "< 0.15 s")
    alternate(
        rounds * 3,
        lambda: timed([*POSTSYNC, "--version"], work),
        lambda: timed([PY, "-c", "pass"], work),
        v,
    )
    v.extra["baseline"] = '`python -c "pass"`'
    v.notes.append(
        f"absolute median {v.ours_median:.3f} s: {'met' if v.ours_median < 0.15 else 'NOT met'}"
    )
    return [r, v]


# -- records for post-treatment workloads ----------------------------------------------


def record_for(area: Path, entries: list[dict[str, object]], playbook: Path) -> Path:
    runs = area / ".postsync" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_id = "20261124T010000-bench0"
    record = {
        "version": 1,
        "run_id": run_id,
        "playbook": str(playbook),
        "name": "bench",
        "check": False,
        "started": "2026-11-24T01:00:00+00:00",
        "finished": "2026-11-24T01:00:05+00:00",
        "area": str(area),
        "steps": [],
        "control_files": entries,
    }
    path = runs / f"{run_id}.json"
    path.write_text(json.dumps(record))
    return path


def entry(
    path: Path,
    content: bytes,
    *,
    failed: list[dict[str, object]] | None = None,
    courses: list[dict[str, object]] | None = None,
    lines: int = 0,
) -> dict[str, object]:
    header = content.split(b"\n", 1)[0] + b"\n"
    failed = failed or []
    return {
        "command": "enrolments",
        "path": str(path),
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "encoding": "utf-8",
        "separator": ";",
        "bom": False,
        "header": base64.b64encode(header).decode(),
        "lines": {
            "total": lines,
            "changed": lines - len(failed),
            "unchanged": 0,
            "failed": len(failed),
        },
        "failed_lines": failed,
        "processed_courses": courses or [],
        "report": None,
        "error": None,
    }


# -- B2 archive + delete ----------------------------------------------------------------

B2_PLAYBOOK = """\
name: B2
area: area
post_treatments:
  - archive_control_files: {dest: "archives/{{ file.name }}"}
  - delete_control_files: {}
"""

B2_BASELINE = """
import os, shutil, sys
area = sys.argv[1]
os.makedirs(os.path.join(area, "archives"), exist_ok=True)
for name in sorted(os.listdir(area)):
    src = os.path.join(area, name)
    if name.endswith(".csv"):
        shutil.copy2(src, os.path.join(area, "archives", name))
        os.unlink(src)
"""


# The floor of B2: the same copies made durable before any original is deleted (one
# os.sync() for all, the cheapest way), which an archive step must do: a crash after
# the deletions must not lose what the archives hold.
B2_FLOOR = """
import os, shutil, sys
area = sys.argv[1]
os.makedirs(os.path.join(area, "archives"), exist_ok=True)
names = [n for n in sorted(os.listdir(area)) if n.endswith(".csv")]
for name in names:
    shutil.copy2(os.path.join(area, name), os.path.join(area, "archives", name))
os.sync()
for name in names:
    os.unlink(os.path.join(area, name))
"""


def b2(work: Path, rounds: int, scale: float) -> list[Result]:
    count = max(100, int(10_000 * scale))
    rng = random.Random(2)
    contents = {
        f"enrols_{i:05d}.csv": (
            "cmd;cid;uid;rolename\n"
            + "".join(
                f"add;C{rng.randrange(999):06d};U{rng.randrange(99999):07d};student\n"
                for _ in range(60)
            )
        ).encode()[:2048]
        for i in range(count)
    }

    def setup(name: str) -> Path:
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        area = root / "area"
        area.mkdir(parents=True)
        for fname, data in contents.items():
            (area / fname).write_bytes(data)
        (root / "playbook.yml").write_text(B2_PLAYBOOK)
        entries = [entry(area / f, d) for f, d in contents.items()]
        record_for(area, entries, root / "playbook.yml")
        return root

    def ours() -> Timing:
        root = setup("b2-ours")
        record = next((root / "area" / ".postsync" / "runs").glob("*.json"))
        t = timed([*POSTSYNC, "post", str(record)], root)
        assert not list((root / "area").glob("*.csv")), "postsync left control files"
        return t

    def base(script: str = B2_BASELINE) -> Timing:
        root = setup("b2-base")
        return timed([PY, "-c", script, str(root / "area")], root)

    r = Result("B2", f"archive + delete {count:,} control files (2 KB each)", "<= 1.5x", limit=1.5)
    r.extra["baseline"] = "a Python loop of `shutil.copy2` + `os.unlink`"
    r.floor_label = (
        "the same copies made durable (one `os.sync()`) before the originals are deleted"
    )
    alternate(rounds, ours, base, r, lambda: base(B2_FLOOR))
    r.ansible_sample = min(count, 50)
    r.ansible_factor = count / r.ansible_sample

    def sample() -> tuple[Path, dict[str, str]]:
        root = work / "b2-ansible"
        shutil.rmtree(root, ignore_errors=True)
        (root / "area").mkdir(parents=True)
        for name in list(contents)[: r.ansible_sample]:
            (root / "area" / name).write_bytes(contents[name])
        return root, {"area": str(root / "area")}

    with_ansible(r, min(rounds, 3), ANSIBLE_B2, sample)
    return [r]


# -- B3 purge ---------------------------------------------------------------------------

B3_PLAYBOOK = """\
name: B3
area: area
post_treatments:
  - purge_old_files: {paths: [archives], older_than_days: 30, recurse: true}
"""


def b3(work: Path, rounds: int, scale: float) -> list[Result]:
    count = max(1000, int(100_000 * scale))
    old = time.time() - 60 * 86400

    def setup(name: str) -> Path:
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        for d in range(100):
            directory = root / "area" / "archives" / f"d{d:02d}"
            directory.mkdir(parents=True)
            for i in range(count // 100):
                path = directory / f"f{i:05d}.csv"
                path.write_bytes(b"x")
                if i % 2:
                    os.utime(path, (old, old))
        (root / "playbook.yml").write_text(B3_PLAYBOOK)
        return root

    def ours() -> Timing:
        root = setup("b3-ours")
        return timed([*POSTSYNC, "run", "playbook.yml"], root)

    def base() -> Timing:
        root = setup("b3-base")
        return timed(
            ["find", str(root / "area" / "archives"), "-type", "f", "-mtime", "+30", "-delete"],
            root,
        )

    r = Result("B3", f"purge {count:,} files, half older than 30 days", "<= 2x", limit=2.0)
    r.extra["baseline"] = "`find DIR -type f -mtime +30 -delete`"
    alternate(rounds, ours, base, r)
    r.ansible_sample = min(count, 200)
    r.ansible_factor = count / r.ansible_sample

    def sample() -> tuple[Path, dict[str, str]]:
        root = work / "b3-ansible"
        shutil.rmtree(root, ignore_errors=True)
        top = root / "archives"
        top.mkdir(parents=True)
        for i in range(r.ansible_sample):
            path = top / f"f{i:05d}.csv"
            path.write_bytes(b"x")
            if i % 2:
                os.utime(path, (old, old))
        return root, {"top": str(top)}

    with_ansible(r, rounds, ANSIBLE_B3, sample)
    return [r]


# -- the optional Ansible column ----------------------------------------------------------

ANSIBLE_B2 = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: archive the control files
      ansible.builtin.copy:
        src: "{{ item }}"
        dest: "{{ area }}/archives/"
        mode: preserve
      loop: "{{ query('ansible.builtin.fileglob', area + '/*.csv') }}"
    - name: delete the control files
      ansible.builtin.file:
        path: "{{ item }}"
        state: absent
      loop: "{{ query('ansible.builtin.fileglob', area + '/*.csv') }}"
"""

ANSIBLE_B3 = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: find the old files
      ansible.builtin.find:
        paths: "{{ top }}"
        age: 30d
        recurse: true
      register: old
    - name: delete them
      ansible.builtin.file:
        path: "{{ item.path }}"
        state: absent
      loop: "{{ old.files }}"
"""


def ansible_playbook() -> str | None:
    """ansible-playbook of the bench environment (ansible-core installed), if any."""
    beside = Path(PY).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


def with_ansible(
    result: Result, rounds: int, playbook: str, setup: Callable[[], tuple[Path, dict[str, str]]]
) -> None:
    """Time `playbook` on a sample made by `setup` (its folder, its variables)."""
    command = ansible_playbook()
    if command is None:
        return
    for _ in range(rounds):
        root, variables = setup()
        (root / "ansible.yml").write_text(playbook)
        env = {
            **os.environ,
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOME": str(root / ".ansible"),
            "ANSIBLE_LOCAL_TEMP": str(root / ".ansible" / "tmp"),
        }
        extra = []
        for key, value in {"ansible_python_interpreter": PY, **variables}.items():
            extra += ["-e", f"{key}={value}"]
        result.ansible.append(
            timed([command, "-i", "localhost,", *extra, "ansible.yml"], root, env)
        )


# -- B4 / B7 sync -------------------------------------------------------------------------

SYNC_PLAYBOOK = """\
name: B4
area: area
database: "{url}"
sync:
  - command: enrolments
    file: enrols.csv
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


def drop_postgresql(url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    engine = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}"')
    engine.dispose()


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
    out = [r4]
    if setup.kind == "SQLite":
        r7 = Result(
            "B7", f"`--check` vs the real run on B4 ({lines:,} lines, SQLite)", "<= 1.2x", limit=1.2
        )
        alternate(rounds, lambda: ours(control, "--check"), lambda: ours(control), r7)
        r7.extra["baseline"] = "the real run"
        out.append(r7)
    return out


# -- B5 retry file ------------------------------------------------------------------------

B5_PLAYBOOK = """\
name: B5
area: area
post_treatments:
  - write_retry_file: {dest: "retry.csv"}
    tags: [retry]
"""

B5_BASELINE = """
import sys
src, dst, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, "rb") as f, open(dst, "wb") as out:
    out.write(f.readline())
    for n, line in enumerate(f):
        if n % every == 0:
            out.write(line)
"""


def b5(work: Path, rounds: int, scale: float) -> list[Result]:
    lines = max(10_000, int(1_000_000 * scale))
    data = work / "b5"
    data.mkdir(exist_ok=True)
    control = data / "enrols.csv"
    enrolment_file(control, lines, users=50_000, courses=2_000, failing=0)
    content = control.read_bytes()
    raw_lines = content.splitlines(keepends=True)
    failed = [
        {"number": n + 1, "raw": base64.b64encode(raw).decode(), "text": "", "message": "x"}
        for n, raw in enumerate(raw_lines)
        if n >= 1 and (n - 1) % 10 == 0
    ]

    def ours(*extra: str) -> Timing:
        root = data / "ours"
        shutil.rmtree(root, ignore_errors=True)
        (root / "area").mkdir(parents=True)
        shutil.copy(control, root / "area" / "enrols.csv")
        (root / "playbook.yml").write_text(B5_PLAYBOOK)
        record = record_for(
            root / "area",
            [entry(root / "area" / "enrols.csv", content, failed=failed, lines=lines)],
            root / "playbook.yml",
        )
        t = timed([*POSTSYNC, "post", str(record), *extra], root)
        assert (root / "area" / "retry.csv").exists() == (not extra)
        return t

    def base() -> Timing:
        root = data / "base"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        return timed([PY, "-c", B5_BASELINE, str(control), str(root / "retry.csv"), "10"], root)

    r = Result("B5", f"retry file of {lines:,} lines, 10% failed", "<= 2x", limit=2.0)
    r.extra["baseline"] = "a plain byte copy of the header and those lines"
    r.floor_label = (
        "the same `postsync post` of the same record with the retry step skipped: Python,"
        " the playbook, the record (its failed lines) loaded, checked and saved again"
    )
    return [alternate(rounds, ours, base, r, lambda: ours("--skip-tags", "retry"))]


# -- B6 group cleanup ---------------------------------------------------------------------

B6_PLAYBOOK = """\
name: B6
area: area
database: "sqlite:///moodle.db"
post_treatments:
  - clean_empty_groups: {}
"""

B6_BASELINE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.execute("DELETE FROM mdl_groupings_groups WHERE groupid IN (SELECT g.id FROM mdl_groups g"
               " WHERE NOT EXISTS (SELECT 1 FROM mdl_groups_members m WHERE m.groupid = g.id))")
    db.execute("DELETE FROM mdl_groups WHERE NOT EXISTS"
               " (SELECT 1 FROM mdl_groups_members m WHERE m.groupid = mdl_groups.id)")
"""


def b6(work: Path, rounds: int, scale: float) -> list[Result]:
    courses = max(100, int(10_000 * scale))
    data = work / "b6"
    data.mkdir(exist_ok=True)
    template = data / "moodle.db"
    if not template.exists():
        build_site(f"sqlite:///{template}", users=1000, courses=courses, groups_per_course=10)
        db = sqlite3.connect(template)
        with db:
            ids = [r[0] for r in db.execute("SELECT id FROM mdl_groups ORDER BY id")]
            db.executemany(
                "INSERT INTO mdl_groups_members (groupid, userid, timeadded, component, itemid)"
                " VALUES (?, ?, 0, '', 0)",
                [(gid, 3 + gid % 997) for n, gid in enumerate(ids) if n % 10 >= 3],
            )
        db.close()
    course_ids = [
        r[0]
        for r in sqlite3.connect(template).execute("SELECT id FROM mdl_course WHERE category != 0")
    ]

    def ours(processed: list[int] = course_ids) -> Timing:
        root = data / "ours"
        shutil.rmtree(root, ignore_errors=True)
        (root / "area").mkdir(parents=True)
        shutil.copy(template, root / "moodle.db")
        (root / "playbook.yml").write_text(B6_PLAYBOOK)
        control = root / "area" / "enrols.csv"
        control.write_bytes(b"cmd;cid;uid;rolename\n")
        courses_json = [{"id": c, "key": f"C{c}"} for c in processed]
        record = record_for(
            root / "area",
            [entry(control, control.read_bytes(), courses=courses_json)],
            root / "playbook.yml",
        )
        t = timed([*POSTSYNC, "post", str(record)], root)
        left = (
            sqlite3.connect(root / "moodle.db")
            .execute("SELECT COUNT(*) FROM mdl_groups")
            .fetchone()[0]
        )
        assert left == len(course_ids) * 10 - len(processed) * 3, left
        return t

    def base() -> Timing:
        root = data / "base"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        shutil.copy(template, root / "moodle.db")
        return timed([PY, "-c", B6_BASELINE, str(root / "moodle.db")], root)

    r = Result(
        "B6",
        f"clean_empty_groups: {courses * 10:,} groups in {courses:,} processed courses, 30% empty",
        "<= 2x",
        limit=2.0,
    )
    r.extra["baseline"] = "one hand-written set-based DELETE (sqlite3)"
    r.floor_label = "the same `postsync post` with one processed course"
    return [alternate(rounds, ours, base, r, lambda: ours(course_ids[:1]))]


# -- report ---------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), {platform.platform()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]


def write_results(results: list[Result], path: Path, args: argparse.Namespace, pg: str) -> None:
    lines = [
        "# postsync benchmarks",
        "",
        "Produced by `tox -e bench` (`python bench/run.py`). Each workload and its baseline",
        "run in fresh processes, alternating which goes first; medians of"
        f" {args.rounds} rounds (B1: {args.rounds * 3}; B2, whose disk work varies most from"
        f" round to round: {args.rounds * 2}).",
        "Ratios are ours / baseline, measured in the same run.",
        "",
        *machine(),
        f"- PostgreSQL: {pg}",
        f"- scale: {args.scale}",
        "",
        "| | workload | ours (median) | baseline (median) | ratio | target | met |"
        + (" ansible-playbook (extrapolated) |" if any(r.ansible for r in results) else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if any(r.ansible for r in results) else ""),
    ]
    for r in results:
        met = r.verdict()
        ansible = ""
        if any(x.ansible for x in results):
            ansible = (
                f" {r.ansible_extrapolated:,.0f} s ({r.ansible_extrapolated / r.ours_median:,.0f}x"
                " ours) |"
                if r.ansible
                else " |"
            )
        lines.append(
            f"| {r.key} | {r.title} | {r.ours_median:.3f} s | {r.base_median:.3f} s"
            f" | {r.ratio:.2f}x | {r.target} | {met} |{ansible}"
        )
    lines += ["", "## Details", ""]
    for r in results:
        lines.append(f"### {r.key}: {r.title}")
        lines.append("")
        for k, v in r.extra.items():
            lines.append(f"- {k}: {v}")
        lines.append(f"- ours: {', '.join(f'{t.seconds:.3f}' for t in r.ours)} s")
        lines.append(f"- baseline: {', '.join(f'{t.seconds:.3f}' for t in r.base)} s")
        if r.floor:
            lines.append(f"- floor ({r.floor_label}):")
            lines.append(
                f"  {', '.join(f'{t.seconds:.3f}' for t in r.floor)} s,"
                f" median {r.floor_median:.3f} s = {r.floor_median / r.base_median:.2f}x"
                f" the baseline; ours is {r.ours_median / r.floor_median:.2f}x the floor"
            )
        if r.ansible:
            each = statistics.median(t.seconds for t in r.ansible) / r.ansible_sample
            lines.append(
                f"- ansible-playbook on {r.ansible_sample} of the files:"
                f" {', '.join(f'{t.seconds:.1f}' for t in r.ansible)} s, {each * 1000:.0f} ms a"
                f" file: {r.ansible_extrapolated:,.0f} s for the whole workload (extrapolated),"
                f" {r.ansible_extrapolated / r.ours_median:,.0f}x ours"
            )
        lines += [f"- {n}" for n in r.notes]
        lines.append("")
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="B1,B2,B3,B4,B5,B6,B7")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="postsync-bench-"))
    results: list[Result] = []
    pg_version = "not run"
    try:
        if "B1" in only:
            results += b1(work, args.rounds)
        if "B2" in only:
            results += b2(work, args.rounds * 2, args.scale)
        if "B3" in only:
            results += b3(work, args.rounds, args.scale)
        if "B5" in only:
            results += b5(work, args.rounds, args.scale)
        if "B6" in only:
            results += b6(work, args.rounds, args.scale)
        if only & {"B4", "B7"}:
            sqlite_dir = work / "sqlite"
            sqlite_dir.mkdir()
            results += b4_b7(
                work,
                args.rounds,
                args.scale,
                SyncSetup(
                    lambda n: f"sqlite:///{sqlite_dir / n}.db", "SQLite", drop_sqlite, sqlite_driver
                ),
            )
            from tests.pgserver import ServerUnavailable, start_server

            try:
                server = start_server()
            except ServerUnavailable as exc:
                pg_version = f"not available ({exc})"
            else:
                try:
                    out = subprocess.run(
                        [str(server.bindir / "postgres"), "--version"],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    pg_version = out.stdout.strip() + " (fsync off, in a temporary directory)"
                    results += b4_b7(
                        work,
                        args.rounds,
                        args.scale,
                        SyncSetup(
                            server.create_database,
                            "PostgreSQL",
                            drop_postgresql,
                            postgresql_driver,
                        ),
                    )
                finally:
                    server.stop()
        for r in results:
            print(
                f"{r.key}: ours {r.ours_median:.3f}s base {r.base_median:.3f}s ratio {r.ratio:.2f}x"
                f" target {r.target} {r.extra} {r.notes}",
                flush=True,
            )
        write_results(results, args.output, args, pg_version)
        print(f"wrote {args.output}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
