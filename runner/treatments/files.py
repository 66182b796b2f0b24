"""What the file-writing treatments share: names that never clobber, verified writes.

save_report, archive_control_files and write_retry_file each plan an `Output` per
control file: the content's sha256, and the name it goes under. A name already holding
the same content means the work is done (a second run changes nothing); a name holding
something else is never silently replaced (`on_conflict`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import StepError
from runner.core.text import plural
from runner.step.protocol import Action, Done
from runner.storage import paths
from runner.storage.atomic import AtomicFile, fsync_dir
from runner.storage.remote import RemotePath

if TYPE_CHECKING:
    from runner.step.ledger import Writes

CHUNK = 1 << 20
#: up to this many files a batch is synced file by file, beyond with one os.sync()
FEW = 16
#: how many numbered names `on_conflict: suffix` tries before giving up
MAX_SUFFIX = 999
#: never through a symlink, never blocking on a FIFO put in a file's place


#: where a treatment writes: a local path, or an object (s3://, runner.storage.remote)
Target = Path | RemotePath


def file_chunks(path: Path) -> Iterator[bytes]:
    """A regular file's content, chunk by chunk (a symlink, a FIFO, a directory is
    refused: OSError)."""
    fd, _ = paths.open_regular(path)
    try:
        while chunk := os.read(fd, CHUNK):
            yield chunk
    finally:
        os.close(fd)


def chunks_sha256(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Target, *, gzipped: bool = False) -> str | None:
    """sha256 of a regular file's content (decompressed when `gzipped`); None if absent.

    A symlink or a directory at `path` is not a file postsync wrote: OSError.
    """
    if isinstance(path, RemotePath):
        return path.store.sha256(path, gzipped=gzipped)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise StepError(f"{path} exists and is not a regular file")
    digest = hashlib.sha256()
    if gzipped:
        try:
            with gzip.open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        except (gzip.BadGzipFile, EOFError):
            return "not-gzip"  # a damaged or foreign file: never identical to anything
        return digest.hexdigest()
    for chunk in file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def numbered(path: Target, n: int, *, gzipped: bool = False) -> Target:
    """`archives/x.csv` -> `archives/x.1.csv`; with gzip `x.csv.gz` -> `x.1.csv.gz`."""
    name = path.name
    tail = ""
    if gzipped and name.endswith(".gz"):
        name, tail = name[:-3], ".gz"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext, dot = name, "", ""
    return path.with_name(f"{stem}.{n}{dot}{ext}{tail}")


@dataclass(frozen=True)
class Output:
    """A file to write: where, and the sha256 its content must have."""

    path: Target
    sha256: str
    gzipped: bool = False
    replace: bool = False  # replaces a different file (on_conflict: overwrite)
    #: the source's modification time, for a gzip header (the file itself is dated
    #: when postsync stores it: its age for purge_old_files)
    mtime_ns: int | None = None


def _same_file(path: Target, source: Path | None) -> bool:
    """Whether `path` is `source` itself (the same inode, under any name)."""
    if source is None or isinstance(path, RemotePath):
        return False
    try:
        return os.path.samestat(os.lstat(path), os.lstat(source))
    except FileNotFoundError:
        return False


def _candidates(target: Target, gzipped: bool) -> Iterator[Target]:
    for n in range(MAX_SUFFIX + 1):
        yield target if n == 0 else numbered(target, n, gzipped=gzipped)


def find_identical(
    target: Target, sha256: str, *, gzipped: bool = False, source: Path | None = None
) -> Target | None:
    """The name among `target`, `target.1`... that already holds this content, if any;
    never `source` itself (a destination rendering to the control file is no copy)."""
    for path in _candidates(target, gzipped):
        found = content_sha256(path, gzipped=gzipped)
        if found is None:
            return None
        if found == sha256 and not _same_file(path, source):
            return path
    return None


def choose(
    target: Target,
    sha256: str,
    on_conflict: str,
    shown: str,
    *,
    gzipped: bool = False,
    mtime_ns: int | None = None,
    source: Path | None = None,
    claimed: dict[Target, tuple[str, str]] | None = None,
    owner: str = "",
) -> Output | Target:
    """Where the content goes: an `Output` to write, or the Path already holding it.

    `shown` is the target as users see it, for the error when `on_conflict: fail`.
    `claimed` holds the names this step's plan already gave other files (name ->
    (sha256, whose)): a name another file of the run will take counts as taken, so two
    files never end up under one name; `owner` is this one (for the message).
    """
    claimed = {} if claimed is None else claimed
    for path in _candidates(target, gzipped):
        other = claimed.get(path)
        found = other[0] if other else content_sha256(path, gzipped=gzipped)
        if found is None:
            claimed[path] = (sha256, owner)
            return Output(path, sha256, gzipped, False, mtime_ns)
        if found == sha256 and not _same_file(path, source):
            return path
        if other is not None and on_conflict != "suffix":
            raise StepError(
                f"{other[1]} and {owner} would both go to {shown}"
                f" (on_conflict: {on_conflict}); make the name differ per file, e.g. with"
                " {{ file.name }}"
            )
        if on_conflict == "fail":
            raise StepError(
                f"{shown} already exists with a different content"
                " (on_conflict: fail; use suffix to keep both)"
            )
        if on_conflict == "overwrite" and not _same_file(path, source):
            claimed[path] = (sha256, owner)
            return Output(path, sha256, gzipped, True, mtime_ns)
    raise StepError(f"{shown}: {MAX_SUFFIX} numbered names are taken; clean up or rename")


def _write(out: AtomicFile, output: Output, chunks: Iterable[bytes], source_name: str) -> None:
    # many small chunks (a retry file's lines) go out in one write call per CHUNK
    # bytes; gzip's output too, every byte of it written before detaching
    buffered = io.BufferedWriter(out.file, CHUNK)
    if output.gzipped:
        mtime = (output.mtime_ns or 0) // 1_000_000_000
        with gzip.GzipFile(
            filename=source_name, mode="wb", fileobj=buffered, mtime=mtime, compresslevel=6
        ) as packed:
            for chunk in chunks:
                packed.write(chunk)
    else:
        for chunk in chunks:
            buffered.write(chunk)
    buffered.flush()
    buffered.detach()


def _verify(out: AtomicFile, output: Output) -> None:
    written = content_sha256(out.tmp, gzipped=output.gzipped)
    if written != output.sha256:
        raise StepError(
            f"{output.path}: verification failed (sha256 {written} written,"
            f" {output.sha256} expected); nothing published"
        )


def _publish(out: AtomicFile, output: Output, *, sync_dir: bool = True) -> None:
    try:
        out.commit(replace=output.replace, sync_dir=sync_dir)
    except FileExistsError:
        raise StepError(
            f"{output.path} appeared since the plan; it was left alone and not replaced"
        ) from None


def new_file_diff(shown: str, lines: Iterable[str], limit: int = 40) -> str:
    """A unified diff creating `shown`, cut after `limit` lines."""
    out = [f"--- /dev/null\n+++ {shown}\n"]
    body = []
    count = 0
    for line in lines:
        count += 1
        if count <= limit:
            body.append("+" + line.rstrip("\r\n") + "\n")
    out.append(f"@@ -0,0 +1,{count} @@\n")
    out.extend(body)
    if count > limit:
        out.append(f"@@ ... {count - limit} more lines @@\n")
    return "".join(out)


def deletion_diff(shown: str, st: os.stat_result, when: str) -> str:
    return f"--- {shown}\n+++ /dev/null\n@@ deleted: {st.st_size} bytes, modified {when} @@\n"


#: the mode of what postsync writes in the area (archives, reports, retry files)
MODE = 0o640


def private(source_mode: int | None) -> int:
    """The mode of a file made of a control file (its archive, retry file, report): no
    more permissive than the control file (a 0600 users file gives 0600 copies)."""
    return MODE if source_mode is None else MODE & source_mode


@dataclass(frozen=True)
class WriteJob:
    """An Action's payload for the file-writing treatments: what to write, and where."""

    output: Output
    chunks: Callable[[], Iterable[bytes]]
    source_name: str = ""
    #: called once the file is published (e.g. to note a verified archive)
    published: Callable[[Any], None] | None = None
    #: the published file's permission bits
    mode: int = MODE


def plan_writes(actions: Sequence[Action], check: bool, written: Writes) -> None:
    """A preview's writes, recorded as the run's would be when applied: the files it
    would store (purge_old_files counts them, as the run's are on disk then)."""
    if check:
        written.add_written(
            a.data.output.path for a in actions if isinstance(a.data.output.path, Path)
        )


def apply_writes(
    actions: Sequence[Action], noun: str, written: Writes | None = None
) -> Iterator[Done]:
    """Write each action's WriteJob: every file is written to a temporary name and
    verified, then one `os.sync()` makes them all durable, then each is published (never
    replacing a different file) and each directory synced once. One disk flush for a
    batch instead of two per file; a failure does not stop the others."""
    failures: list[str] = []
    remote = [a for a in actions if isinstance(a.data.output.path, RemotePath)]
    actions = [a for a in actions if not isinstance(a.data.output.path, RemotePath)]
    yield from _upload(remote, failures)
    # a few files are synced one by one; for many, one os.sync() is far cheaper
    few = len(actions) <= FEW
    staged: list[tuple[Action, AtomicFile]] = []
    opened: list[AtomicFile] = []
    made: set[Path] = set()
    try:
        for action in actions:
            job: WriteJob = action.data
            assert isinstance(job.output.path, Path)
            try:
                parent = job.output.path.parent
                if parent not in made:
                    parent.mkdir(parents=True, exist_ok=True)
                    made.add(parent)
                out = AtomicFile(job.output.path, mode=job.mode).__enter__()
                opened.append(out)
                _write(out, job.output, job.chunks(), job.source_name)
                out.sync(fsync=few)
                _verify(out, job.output)
            except (StepError, OSError) as exc:
                failures.append(_failure(exc, action))
                continue
            staged.append((action, out))
        if staged and not few:
            os.sync()
        directories: set[Path] = set()
        for action, out in staged:
            job = action.data
            try:
                _publish(out, job.output, sync_dir=False)
            except (StepError, OSError) as exc:
                failures.append(_failure(exc, action))
                continue
            directories.add(out.path.parent)
            if written is not None:
                written.add_written((out.path,))
            if job.published is not None:
                job.published(job.output.path)
            yield Done(action)
        for directory in directories:
            fsync_dir(directory)
    finally:
        for out in opened:
            out.__exit__(None, None, None)  # removes what was not published
    if failures:
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        raise StepError(f"{plural(len(failures), noun)} failed: " + "; ".join(failures[:3]) + more)


def _upload(actions: Sequence[Action], failures: list[str]) -> Iterator[Done]:
    """Upload each object, read it back and check it; a failure does not stop the
    others (and leaves nothing counted as written)."""
    for action in actions:
        job: WriteJob = action.data
        output = job.output
        assert isinstance(output.path, RemotePath)
        try:
            output.path.store.upload_verified(
                output.path,
                job.chunks(),
                output.sha256,
                gzipped=output.gzipped,
                mtime=(output.mtime_ns or 0) // 1_000_000_000,
                source_name=job.source_name,
                replace=output.replace,
            )
        except (StepError, OSError) as exc:
            failures.append(_failure(exc, action))
            continue
        if job.published is not None:
            job.published(output.path)
        yield Done(action)


def _failure(exc: Exception, action: Action) -> str:
    if isinstance(exc, OSError):
        return f"{exc.filename or action.target}: {exc.strerror or exc}"
    return str(exc)
