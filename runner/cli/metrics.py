"""`--metrics-file PATH`: the run's figures as a Prometheus textfile-collector file.

node_exporter's textfile collector reads every `*.prom` file of its directory; the file
is replaced atomically (a scrape never reads half of it). Each series carries the
playbook's name as its `playbook` label; the series of other playbooks already in the
file are kept, and a failed run keeps its playbook's last success time.

Several playbooks (of several areas) may share one file: each reads, merges and replaces
it holding an `flock` on `PATH.lock` beside it, through a temporary of its own, so none
loses another's series. Only a regular file is read or replaced: the path is opened
without following a link and without blocking (a FIFO there never hangs the run). A file
that holds anything but postsync's own metrics (a mistyped path naming a playbook, a
key) is left as it is; a file replaced keeps its permission bits (a new one: 0644).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.storage.atomic import fsync_dir

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


#: how long a writer waits for another's lock on the file (each holds it milliseconds)
LOCK_WAIT = 30.0
_OPEN = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _regular(fd: int, path: Path) -> None:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file: postsync writes only a regular file")


def _open(path: Path, flags: int) -> int:
    """`path` opened without following a link nor blocking, checked a regular file."""
    try:
        fd = os.open(path, flags | _OPEN, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symlink: postsync never follows one") from None
        raise
    try:
        _regular(fd, path)
    except OSError:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `PATH.lock`, waited for at most LOCK_WAIT seconds."""
    lock = path.with_name(path.name + ".lock")
    try:
        fd = _open(lock, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise OSError(exc.errno, f"{lock}: {exc.strerror}") from None
    try:
        until = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > until:
                    raise OSError(
                        errno.EAGAIN, f"{lock}: held by another process for {LOCK_WAIT:.0f} s"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[str, int | None]:
    """The file's text and permission bits ('' and None when there is none).

    A file that holds anything but postsync's own metrics (a playbook, a key: a path
    mistyped) is refused, never replaced: an empty one is the only other kind taken.
    """
    try:
        fd = _open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "", None
    with open(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        data = file.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or not _ours(text):
        raise OSError(errno.EEXIST, "holds something other than postsync's metrics: left as it is")
    return text, mode


_COMMENT = re.compile(r"^# (HELP|TYPE) (\w+)(?: .*)?$")


def _ours(text: str) -> bool:
    """Whether `text` is Prometheus text of postsync's metrics only (or nothing)."""
    for line in text.split("\n"):
        if not line:
            continue
        match = _COMMENT.match(line) or _SAMPLE.match(line)
        if match is None:
            return False
        if match.group(2 if match.re is _COMMENT else 1) not in METRICS:
            return False
    return True


def _replace(path: Path, data: bytes, mode: int | None) -> None:
    """Write `data` to this writer's own temporary beside `path`, then rename it there,
    with the replaced file's permission bits (`mode`; a new file: 0644).

    Called under the lock: a temporary of this file's that another writer left (killed
    before its rename) is stale and removed; the temporaries of other files are not
    this writer's business.
    """
    directory = path.parent
    prefix = f".{path.name[:80]}.{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:8]}."
    for entry in os.scandir(directory):
        if _stale(entry, prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
    tmp = directory / f"{prefix}{os.getpid()}-{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with open(fd, "wb") as file:
            file.write(data)
            file.flush()
            # whatever the umask: the collector reads it; a file postsync replaces keeps
            # the mode its owner gave it
            os.fchmod(fd, 0o644 if mode is None else mode)
            os.fsync(fd)
        os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _stale(entry: os.DirEntry[str], prefix: str) -> bool:
    """A temporary of this file's, a regular file of this user's."""
    if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
        return False
    st = entry.stat(follow_symlinks=False)
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def _existing(text: str) -> list[tuple[str, str, str, str]]:
    """The samples already in the file: (metric, playbook, other labels, value)."""
    found = []
    # lines end at \n only: a label value holds any other character (U+2028 too)
    for line in text.split("\n"):
        match = _SAMPLE.match(line)
        if match and match.group(1) in METRICS:
            metric, playbook, rest, value = match.groups()
            found.append((metric, _unescape(playbook), rest, value))
    return found


@dataclass(frozen=True)
class Figures:
    """A run's figures, as the metrics file keeps them."""

    exit_code: int
    #: when the run ended (Unix time) and how long it took (s)
    finished: float
    duration: float
    #: control-file lines by outcome (ok, failed), steps by status
    lines: Mapping[str, int]
    steps: Mapping[str, int]


def check_writable(path: Path) -> None:
    """OSError if the metrics could not be written at the end of a run: checked before it
    starts, so that the run tells of it (its output, notify, exit 3) while it goes on.
    Takes the lock as a write does: a path that is not a regular file, a file holding
    something else, a directory a read-only mount or the permissions keep from writing."""
    with _locked(path):
        _read(path)
        if not os.access(path.parent, os.W_OK):
            raise OSError(errno.EACCES, f"{path.parent}: not writable")


def write_metrics(path: Path, playbook: str, figures: Figures) -> None:
    """Replace the playbook's series in `path` by this run's (the others' kept)."""
    # a name that is not valid UTF-8 (a lone surrogate from a YAML escape) as written
    playbook = playbook.encode("utf-8", "replace").decode("utf-8")
    with _locked(path):
        # read first: a path that is not a regular file is refused before any write
        old, mode = _read(path)
        text = _merge(_existing(old), playbook, figures)
        _replace(path, text.encode("utf-8"), mode)


def _merge(old: list[tuple[str, str, str, str]], playbook: str, figures: Figures) -> str:
    """The file's new text: the other playbooks' series, and this run's."""
    samples: dict[str, list[tuple[str, str, str]]] = {name: [] for name in METRICS}
    for metric, label, rest, value in old:
        if label != playbook:
            samples[metric].append((label, rest, value))
    success = [
        v
        for m, label, _, v in old
        if label == playbook and m == "postsync_last_success_timestamp_seconds"
    ]
    if figures.exit_code in (0, 2):
        success = [f"{figures.finished:.3f}"]

    def add(metric: str, value: float | str, **labels: str) -> None:
        rest = "".join(f',{k}="{_escape(v)}"' for k, v in labels.items())
        samples[metric].append((playbook, rest, str(value)))

    add("postsync_last_run_timestamp_seconds", f"{figures.finished:.3f}")
    if success:
        add("postsync_last_success_timestamp_seconds", success[0])
    add("postsync_last_exit_code", figures.exit_code)
    add("postsync_run_duration_seconds", f"{figures.duration:.3f}")
    for outcome, count in figures.lines.items():
        add("postsync_lines", count, outcome=outcome)
    for status, count in figures.steps.items():
        add("postsync_steps", count, status=status)
    out = []
    for metric, (help_text, _labels) in METRICS.items():
        if not samples[metric]:
            continue
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for label, rest, value in sorted(samples[metric]):
            out.append(f'{metric}{{playbook="{_escape(label)}"{rest}}} {value}')
    return "\n".join(out) + "\n"
