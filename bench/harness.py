"""What every workload uses: timing a command in a fresh process (its peak RSS
included), alternating a workload with its baseline, medians, run records to post-process,
and the optional ansible-playbook column."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def check_applied(area: Path, lines: int) -> None:
    """The newest run of the area applied its file's `lines` lines: a run that skipped
    its file (not settled, not matched) would time nothing (SystemExit)."""
    runs = area / ".postsync" / "runs"
    records = sorted(runs.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    done = json.loads(records[-1].read_text())["control_files"] if records else []
    total = sum(int(f["lines"]["total"]) for f in done)
    if total != lines:
        raise SystemExit(f"{area}: the run applied {total:,} lines, not {lines:,}")


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
    #: other references measured in the same rounds, by label (alternate's `others`)
    others: dict[str, list[Timing]] = field(default_factory=dict)

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
    others: dict[str, Callable[[], Timing]] | None = None,
) -> Result:
    """Run each side `rounds` times, rotating which goes first; `others`: more
    references, by label, in the same rounds (Result.others)."""
    sides: list[tuple[list[Timing], Callable[[], Timing]]] = [
        (result.ours, ours),
        (result.base, base),
    ]
    if floor is not None:
        sides.append((result.floor, floor))
    for label, run in (others or {}).items():
        sides.append((result.others.setdefault(label, []), run))
    for r in range(rounds):
        shift = r % len(sides)
        for timings, run in sides[shift:] + sides[:shift]:
            timings.append(run())
    return result


def record_for(area: Path, entries: list[dict[str, object]], playbook: Path) -> Path:
    runs = area / ".postsync" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_id = "20261124T010000-be0c40"  # a run id as postsync makes them
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
        "sync_complete": True,  # `post` refuses a record whose sync was cut short
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
