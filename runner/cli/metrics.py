"""`--metrics-file PATH`: the run's figures as a Prometheus textfile-collector file.

node_exporter's textfile collector reads every `*.prom` file of its directory; the file
is replaced atomically (a scrape never reads half of it). Each series carries the
playbook's name as its `playbook` label; the series of other playbooks already in the
file are kept, and a failed run keeps its playbook's last success time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from runner.storage.atomic import atomic_write

#: name -> (help, the labels besides playbook)
METRICS = {
    "postsync_last_run_timestamp_seconds": ("When the playbook's last run ended (Unix time).", ()),
    "postsync_last_success_timestamp_seconds": (
        "When the playbook's last successful run ended: exit 0, or 2 (lines failed, in the"
        " retry files) (Unix time).",
        (),
    ),
    "postsync_last_exit_code": ("The exit code of the playbook's last run.", ()),
    "postsync_run_duration_seconds": ("How long the playbook's last run took.", ()),
    "postsync_lines": ("Control-file lines of the last run, by outcome.", ("outcome",)),
    "postsync_steps": ("Steps of the last run, by status.", ("status",)),
}
_SAMPLE = re.compile(r'^(\w+)\{playbook="((?:[^"\\]|\\.)*)"(.*?)\} (\S+)$')


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _existing(path: Path) -> list[tuple[str, str, str, str]]:
    """The samples already in the file: (metric, playbook, other labels, value)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) in METRICS:
            metric, playbook, rest, value = match.groups()
            found.append((metric, _unescape(playbook), rest, value))
    return found


def write_metrics(
    path: Path,
    playbook: str,
    *,
    exit_code: int,
    finished: float,
    duration: float,
    lines: Mapping[str, int],
    steps: Mapping[str, int],
) -> None:
    """Replace the playbook's series in `path` by this run's."""
    old = _existing(path)
    samples: dict[str, list[tuple[str, str, str]]] = {name: [] for name in METRICS}
    for metric, label, rest, value in old:
        if label != playbook:
            samples[metric].append((label, rest, value))
    success = [
        v
        for m, label, _, v in old
        if label == playbook and m == "postsync_last_success_timestamp_seconds"
    ]
    if exit_code in (0, 2):
        success = [f"{finished:.3f}"]

    def add(metric: str, value: float | str, **labels: str) -> None:
        rest = "".join(f',{k}="{_escape(v)}"' for k, v in labels.items())
        samples[metric].append((playbook, rest, str(value)))

    add("postsync_last_run_timestamp_seconds", f"{finished:.3f}")
    if success:
        add("postsync_last_success_timestamp_seconds", success[0])
    add("postsync_last_exit_code", exit_code)
    add("postsync_run_duration_seconds", f"{duration:.3f}")
    for outcome, count in lines.items():
        add("postsync_lines", count, outcome=outcome)
    for status, count in steps.items():
        add("postsync_steps", count, status=status)
    out = []
    for metric, (help_text, _labels) in METRICS.items():
        if not samples[metric]:
            continue
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for label, rest, value in sorted(samples[metric]):
            out.append(f'{metric}{{playbook="{_escape(label)}"{rest}}} {value}')
    atomic_write(path, ("\n".join(out) + "\n").encode("utf-8"), mode=0o644)
