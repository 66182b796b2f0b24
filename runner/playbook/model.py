"""One loader: `load_playbook(path) -> Playbook`, validated once, frozen after."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.errors import PlaybookError, Problem
from runner.playbook.schema import STEP_KEYS, playbook_schema, validate
from runner.playbook.source import JsonPath, SourceMap, load_yaml


@dataclass(frozen=True)
class Step:
    """A sync step or a post-treatment item, as written (templates not rendered)."""

    section: str  # "sync" | "post_treatments"
    index: int
    kind: str  # sync command or treatment name
    name: str
    params: dict[str, Any]
    when: str | bool | None
    tags: tuple[str, ...]
    ignore_errors: bool

    @property
    def path(self) -> JsonPath:
        """JSON path of the step's parameters (where their errors are reported)."""
        if self.section == "sync":
            return ("sync", self.index)
        return ("post_treatments", self.index, self.kind)

    @property
    def item_path(self) -> JsonPath:
        return (self.section, self.index)

    @property
    def label(self) -> str:
        return f"{self.section}[{self.index}]"


@dataclass(frozen=True)
class Playbook:
    file: Path
    name: str
    area: str
    database: str | None
    prefix: str
    timezone: str | None
    roots: tuple[str, ...]
    keep_records_days: int
    vars: tuple[tuple[str, Any], ...]
    sync: tuple[Step, ...]
    post_treatments: tuple[Step, ...]
    source: SourceMap
    #: the `storage:` section (object storage settings, templates)
    storage: tuple[tuple[str, str], ...] = ()
    #: seconds to connect to the database, and to wait for another writer's lock
    connect_timeout: float = 10.0
    lock_timeout: float = 30.0

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.sync + self.post_treatments

    @property
    def base_dir(self) -> Path:
        return self.file.parent


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _sync_step(index: int, item: dict[str, Any]) -> Step:
    params = {k: v for k, v in item.items() if k not in STEP_KEYS}
    return Step(
        "sync",
        index,
        item["command"],
        item.get("name") or item["command"],
        params,
        item.get("when"),
        _tags(item.get("tags")),
        bool(item.get("ignore_errors")),
    )


def _post_step(index: int, item: dict[str, Any]) -> Step:
    (kind,) = (k for k in item if k not in STEP_KEYS)
    return Step(
        "post_treatments",
        index,
        kind,
        item.get("name") or kind,
        item[kind] or {},
        item.get("when"),
        _tags(item.get("tags")),
        bool(item.get("ignore_errors")),
    )


def load_playbook(path: Path) -> Playbook:
    """Parse, validate against the schema, and freeze; PlaybookError lists every problem."""
    data, smap = load_yaml(path)
    if data is None:
        data = {}
    problems = validate(data, smap, playbook_schema())
    if problems:
        raise PlaybookError(problems)
    return Playbook(
        file=path.absolute(),
        name=data["name"],
        area=data["area"],
        database=data.get("database"),
        prefix=data.get("prefix", "mdl_"),
        timezone=data.get("timezone"),
        roots=tuple(data.get("roots") or ()),
        keep_records_days=data.get("keep_records_days", 90),
        vars=tuple((data.get("vars") or {}).items()),
        sync=tuple(_sync_step(i, s) for i, s in enumerate(data.get("sync") or [])),
        post_treatments=tuple(
            _post_step(i, s) for i, s in enumerate(data.get("post_treatments") or [])
        ),
        source=smap,
        storage=tuple((data.get("storage") or {}).items()),
        connect_timeout=float((data.get("database_timeouts") or {}).get("connect", 10)),
        lock_timeout=float((data.get("database_timeouts") or {}).get("lock", 30)),
    )


def load_vars_file(path: Path) -> dict[str, Any]:
    """`-e @vars.yml`: a mapping of extra variables."""
    data, smap = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise PlaybookError([Problem(smap.file, 1, 1, "", "extra vars must be a mapping of names")])
    return data
