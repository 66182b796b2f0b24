"""purge_old_files: delete stored files older than N days."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.core.errors import StepError
from runner.core.text import plural
from runner.step.facts import RunFacts
from runner.step.ledger import Stored
from runner.step.protocol import Action, Done, Plan
from runner.step.scope import StepScope
from runner.storage.paths import STATE_DIR, DirFds, holds_state, identity, unlink_regular
from runner.storage.temporaries import TEMPORARY
from runner.treatments.files import deletion_diff


@dataclass(frozen=True)
class PurgeConfig:
    paths: tuple[Path, ...]
    older_than_days: int
    patterns: tuple[str, ...]
    exclude: tuple[str, ...]
    recurse: bool
    hidden: bool
    keep_last: int = 0


def _matches(rel: str, name: str, globs: Sequence[str]) -> bool:
    if globs == ("*",):
        return True
    return any(fnmatch.fnmatchcase(rel if "/" in g else name, g) for g in globs)


def _coming(
    names: Iterable[str], directory: str, parts: tuple[str, ...], config: PurgeConfig
) -> int:
    """Of the files a previewed run would store in `directory` (`names`), those not on
    disk yet that the purge would count: the newest of the directory, as they are once
    the run stored them."""
    count = 0
    for name in names:
        if name.startswith(".") and not config.hidden:
            continue
        rel = "/".join((*parts, name))
        if not _matches(rel, name, config.patterns):
            continue
        if config.exclude and _matches(rel, name, config.exclude):
            continue
        count += not os.path.lexists(os.path.join(directory, name))
    return count


class PurgeOldFiles:
    """Delete stored files whose modification time is older than N days.

    Parameters:
      paths (list, required): directories to purge, relative to the area or under `roots:`.
      older_than_days (integer >= 1, or a template rendering to one; required): a file
        goes when its mtime is more than this many days (of 24 hours) before the run's
        start.
      patterns (list of globs, default ["*"]): only files whose name matches one; a glob
        containing "/" is matched against the path relative to the listed directory.
      exclude (list of globs, default []): files matching one are kept.
      recurse (boolean, default false): also purge subdirectories.
      hidden (boolean, default false): also consider hidden files and directories.
      keep_last (integer >= 0, or a template rendering to one; default 0): never delete
        the N newest matching files of each directory, however old: a feed that stopped
        for longer than older_than_days keeps its last N files.

    Example:
      - name: keep 90 days of history
        purge_old_files:
          paths: [archives, reports]
          older_than_days: 90
          exclude: ["*.keep"]

    Guarantees: only regular files are deleted; symlinks are never followed (neither a
    symlinked file nor a symlinked directory) and never deleted; it never leaves the
    listed directories nor their filesystem; no `.postsync/` directory is entered or
    touched (this area's state: its lock and run records), nor a run's temporary
    `.postsync-*.tmp` (removed by its run, or by a later run once its maker is gone);
    another area (a directory holding a `.postsync/`, at any depth below a listed one)
    is never entered: its files, control files its run has yet to read among them, are
    its own, however old (the step's detail says `kept: B is another area`), and a
    listed path that is another area or in one is refused before anything runs (exit
    4); a file any sync step's glob matches is
    kept (a control file awaiting sync, even one dropped while the run went on);
    nothing this run stored (archives, reports, retry files) or counts as a control
    file's archive is purged by it; a file that vanished meanwhile is not an error; a
    missing directory is nothing to do. A file's age is its modification time: for
    what postsync stores, when it stored it (an archive does not take its control
    file's old mtime; that is in the run record and, compressed, in the gzip header).
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> PurgeConfig:
        raw_paths = scope.render(params["paths"], "paths")
        return PurgeConfig(
            paths=tuple(
                scope.confine_apart(scope.confine(p, "paths", i), "paths", i)
                for i, p in enumerate(raw_paths)
            ),
            older_than_days=scope.integer(params["older_than_days"], "older_than_days", 1),
            patterns=tuple(scope.render(params.get("patterns", ["*"]), "patterns")),
            exclude=tuple(scope.render(params.get("exclude", []), "exclude")),
            recurse=bool(params.get("recurse", False)),
            hidden=bool(params.get("hidden", False)),
            keep_last=scope.integer(params.get("keep_last", 0), "keep_last", 0),
        )

    def plan(self, config: PurgeConfig, run: RunFacts, ledger: Stored, services: object) -> Plan:
        cutoff = run.now.timestamp() - config.older_than_days * 86400
        protected = {str(p) for p in run.protected}
        # what this run stored or relies on as a control file's copy is never its to purge
        stored = {str(p) for p in ledger.written} | {
            str(p) for p in ledger.archived() if isinstance(p, Path)
        }
        # a preview: the files the run would have stored by now (on disk in a run), by
        # directory: the newest of their directories, for keep_last
        would: dict[str, set[str]] = {}
        if run.check:
            for p in ledger.written:
                would.setdefault(str(p.parent), set()).add(p.name)
        # plain strings, not Path objects: this loop meets every file of the tree
        found: dict[str, Action] = {}
        kept = missing = fresh = newest = 0
        others: set[str] = set()
        area = str(run.area)  # when a listed root holds it: this run's own
        for top in config.paths:
            try:
                top_st = top.stat()
            except FileNotFoundError:
                missing += 1
                continue
            if not stat.S_ISDIR(top_st.st_mode):
                raise StepError(f"{run.display(top)} is not a directory")
            top_text, shown = str(top), run.display(top)
            if top != run.area and holds_state(top_text):
                others.add(shown)  # became an area since the plan's paths were checked
                continue
            pending: list[tuple[str, ...]] = [()]
            while pending:
                parts = pending.pop()
                directory = os.path.join(top_text, *parts)
                # the directory's matching files: its keep_last newest stay, whatever age
                matching: list[tuple[float, str, str, tuple[str, ...], os.stat_result]] = []
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.name.startswith(".") and not config.hidden:
                            continue
                        if entry.name == STATE_DIR or TEMPORARY.match(entry.name):
                            # an area's state (this one's or a nested area's: its lock,
                            # its records), a run's temporary: never a purge's to touch
                            continue
                        path = entry.path
                        rel = (*parts, entry.name)
                        st = entry.stat(follow_symlinks=False)
                        if stat.S_ISDIR(st.st_mode):
                            if not config.recurse or st.st_dev != top_st.st_dev:
                                continue
                            if path != area and holds_state(path):
                                # another area: its files are its own (control files its
                                # run has yet to read), whatever their age
                                others.add(run.display(Path(path)))
                                continue
                            pending.append(rel)
                            continue
                        if not stat.S_ISREG(st.st_mode):
                            continue
                        if st.st_mtime >= cutoff and not config.keep_last:
                            continue
                        rel_text = "/".join(rel)
                        if not _matches(rel_text, entry.name, config.patterns):
                            continue
                        if config.exclude and _matches(rel_text, entry.name, config.exclude):
                            continue
                        matching.append((st.st_mtime, rel_text, path, rel, st))
                if config.keep_last:
                    matching.sort(key=lambda m: (-m[0], m[1]))
                    coming = _coming(would.get(directory, ()), directory, parts, config)
                    newest += min(len(matching) + coming, config.keep_last)
                    matching = matching[max(config.keep_last - coming, 0) :]
                for mtime, rel_text, path, rel, st in matching:
                    if mtime >= cutoff:
                        continue
                    if path in protected or run.control_glob(path) is not None:
                        kept += 1  # a control file awaiting sync, whenever it came
                        continue
                    if path in stored:
                        fresh += 1
                        continue
                    if path not in found:
                        target = f"{shown}/{rel_text}" if shown != "." else rel_text
                        found[path] = _delete_action(run, top, target, rel, st)
        actions = [found[p] for p in sorted(found, key=lambda p: p.split(os.sep))]
        count = plural(len(actions), "file") if actions else "nothing"
        notes = [f"{count} older than {config.older_than_days} days"]
        if config.keep_last and newest:
            notes.append(f"the {plural(newest, 'newest file')} kept (keep_last)")
        if kept:
            notes.append(f"{plural(kept, 'control file')} awaiting sync kept")
        if fresh:
            notes.append(f"{plural(fresh, 'file')} this run stored kept")
        if others:
            notes.append(_other_areas(sorted(others)))
        if missing:
            notes.append(f"{plural(missing, 'directory', 'directories')} absent")
        return Plan(actions, ", ".join(notes))

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: object, services: object
    ) -> Iterator[Done]:
        by_top: dict[Path, list[Action]] = {}
        for action in actions:
            by_top.setdefault(action.data[0], []).append(action)
        failures: list[str] = []
        for top, group in by_top.items():
            # Unlinking in inode order is much kinder to the disk on large directories.
            group.sort(key=lambda a: a.data[2][1])
            with DirFds(top) as fds:
                for action in group:
                    _, rel, identity = action.data
                    try:
                        gone = unlink_regular(fds, rel, identity)
                    except OSError as exc:
                        failures.append(f"{action.target}: {exc.strerror or exc}")
                        continue
                    yield Done(action, "" if gone else "already gone")
        if failures:
            more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
            raise StepError(
                f"{plural(len(failures), 'file')} not deleted: " + "; ".join(failures[:3]) + more
            )


def _other_areas(names: list[str]) -> str:
    if len(names) == 1:
        return f"kept: {names[0]} is another area ({names[0]}/{STATE_DIR})"
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"kept: {', '.join(names[:3])}{more} are other areas (each has its {STATE_DIR})"


def _delete_action(
    run: RunFacts, top: Path, target: str, rel: tuple[str, ...], st: os.stat_result
) -> Action:
    age_days = int((run.now.timestamp() - st.st_mtime) // 86400)
    diff = None
    if run.diff:
        modified = datetime.fromtimestamp(st.st_mtime, run.now.tzinfo).strftime("%Y-%m-%d %H:%M")
        diff = deletion_diff(target, st, modified)
    return Action(
        "delete", target, f"{age_days} days old", data=(top, rel, identity(st)), diff=diff
    )
