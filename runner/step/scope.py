"""A step's template scope: renders and confines its parameters over the run's context,
reporting errors at their location in the playbook."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.errors import PlaybookError, Problem, StepError
from runner.step.facts import RunFacts
from runner.storage.paths import (
    STATE_DIR,
    confinement_error,
    fit_name,
    other_area,
    resolve_under,
)
from runner.storage.remote import RemotePath, Storage, is_remote
from runner.storage.remote import parse as parse_remote

if TYPE_CHECKING:
    from runner.playbook.model import Step
    from runner.playbook.source import JsonPath


@cache
def _has_s3() -> bool:
    return find_spec("boto3") is not None


@dataclass
class StepScope:
    """Renders and confines one step's parameters, reporting errors at their location."""

    run: RunFacts
    #: the object store of s3:// destinations (a RemotePath names it)
    storage: Storage
    step: Step
    #: the run's template context (runner.step.context.template_context), built once
    #: for the scopes of one step's files
    base: Mapping[str, Any]
    extra: Mapping[str, Any] | None = None
    #: resolved directories, shared by the scopes of one step's control files
    dirs: dict[str, str] | None = None

    def context(self) -> dict[str, Any]:
        """The template context: the run's, with this scope's `extra` (e.g. `file`)."""
        return {**self.base, **self.extra} if self.extra else dict(self.base)

    def _path(self, key: tuple[str | int, ...]) -> JsonPath:
        return (*self.step.path, *key)

    def render(self, value: Any, *key: str | int) -> Any:
        return self.run.renderer.render_data(value, self.context(), self._path(key))

    def optional_integer(self, value: int | str | None, key: str, minimum: int) -> int | None:
        return None if value is None else self.integer(value, key, minimum)

    def integer(self, value: int | str, key: str, minimum: int) -> int:
        """An integer parameter, given as one or as a template rendering to one."""
        if isinstance(value, int):
            return value
        text = str(self.render(value, key)).strip()
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise PlaybookError(
                [self.error(f"renders to {text!r}, not an integer >= {minimum}", key)]
            )
        return number

    def confine_dest(self, raw: str, *key: str | int) -> Path | RemotePath:
        """`confine` for a destination, which may also be an object (s3://) under one
        of the `roots:` in object storage."""
        if not is_remote(raw):
            return self.confine_apart(self.confine_file(raw, *key), *key)
        if not _has_s3():  # before anything runs, not when the step comes
            raise StepError(
                "s3:// destinations need boto3 in postsync's environment (its s3 extra):"
                " pip install 'boto3>=1.35'"
            )
        try:
            bucket, object_key = parse_remote(raw)
        except ValueError as exc:
            raise PlaybookError([self.error(str(exc), *key)]) from None
        if not object_key or object_key.endswith("/"):
            raise PlaybookError([self.error(f"{raw}: no object name after the bucket", *key)])
        target = RemotePath(bucket, object_key, self.storage)
        if not any(target.is_within(root) for root in self.run.remote_roots):
            allowed = ", ".join(f"s3://{b}/{p}" for b, p in self.run.remote_roots) or "none"
            raise PlaybookError(
                [
                    self.error(
                        f"{raw} is not under an object-storage root (roots in s3: {allowed});"
                        " list its bucket/prefix under `roots:`",
                        *key,
                    )
                ]
            )
        return target

    def confine(self, raw: str, *key: str | int) -> Path:
        """The absolute, symlink-resolved path of `raw`, or PlaybookError if outside (or
        empty: a template whose variable is empty)."""
        if not raw.strip():
            raise PlaybookError(
                [self.error("renders to an empty path; is a variable empty?", *key)]
            )
        resolved = resolve_under(raw, self.run.area, self.dirs)
        reason = confinement_error(raw, resolved, self.run.area, self.run.roots)
        if reason:
            raise PlaybookError([self.error(reason, *key)])
        return resolved

    def confine_apart(self, path: Path, *key: str | int) -> Path:
        """`path` (confined) unless it is another area or in one: a directory holding a
        `.postsync/`, whose files (control files awaiting its run) are its own."""
        other = other_area(path, self.run.area, self.run.roots)
        if other is None:
            return path
        where = "is" if other == path else f"is in {other},"
        raise PlaybookError(
            [
                self.error(
                    f"{path} {where} another area (it has its {other / STATE_DIR}); no step"
                    " of this area may purge it or write into it",
                    *key,
                )
            ]
        )

    def confine_file(self, raw: str, *key: str | int) -> Path:
        """`confine` for a file postsync writes: a name longer than the filesystem
        allows (a control file's 250-byte name with a prefix) is shortened (fit_name)."""
        return fit_name(self.confine(raw, *key))

    def error(self, message: str, *key: str | int) -> Problem:
        return self.run.playbook.source.problem(self._path(key), message)
