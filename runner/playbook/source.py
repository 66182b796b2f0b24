"""Safe YAML loading that keeps where each value came from and rejects duplicate keys."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.core.errors import PlaybookError, Problem

#: Playbooks are hand-written config: anything larger is a mistake or an attack.
MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000

JsonPath = tuple[str | int, ...]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(path: Iterable[str | int]) -> str:
    """`("post_treatments", 2, "purge_old_files")` -> `post_treatments[2].purge_old_files`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass
class SourceMap:
    """Line and column (1-based) of every mapping key and value of a document."""

    file: str
    values: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """The position of `path`, or of its nearest located ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        probe = tuple(path)
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))

    def problem(self, path: JsonPath, message: str, *, key: bool = False) -> Problem:
        line, column = self.locate(path, key=key)
        return Problem(self.file, line, column, format_path(path), message)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    """Builds the source map and finds duplicate keys in a composed node tree."""

    def __init__(self, loader: yaml.SafeLoader, smap: SourceMap) -> None:
        self.loader = loader
        self.smap = smap
        self.problems: list[Problem] = []
        self.count = 0

    def walk(self, node: yaml.Node, path: JsonPath) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        self.smap.values.setdefault(path, _pos(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    line, col = _pos(key_node)
                    self.problems.append(
                        Problem(
                            self.smap.file,
                            line,
                            col,
                            format_path(path),
                            "mapping keys must be plain scalars",
                        )
                    )
                    continue
                name = str(key) if not isinstance(key, str) else key
                if key in seen:
                    line, col = _pos(key_node)
                    first = seen[key].start_mark.line + 1
                    self.problems.append(
                        Problem(
                            self.smap.file,
                            line,
                            col,
                            format_path((*path, name)),
                            f"duplicate key {name!r} (first defined on line {first});"
                            " remove one of them",
                        )
                    )
                    continue
                seen[key] = key_node
                self.smap.keys[(*path, name)] = _pos(key_node)
                self.walk(value_node, (*path, name))


class _TooLarge(Exception):
    pass


def load_yaml(path: Path, *, display: str | None = None) -> tuple[Any, SourceMap]:
    """Load one YAML document safely; raise PlaybookError with located problems."""
    shown = display or str(path)
    smap = SourceMap(shown)
    try:
        with path.open("rb") as handle:
            # never more than the limit in memory: /dev/zero, a runaway file
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PlaybookError([Problem(shown, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        message = f"more than {MAX_BYTES} bytes; playbooks and vars files are limited to that"
        raise PlaybookError([Problem(shown, 1, 1, "", message)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PlaybookError([Problem(shown, line, 1, "", "not valid UTF-8")]) from None
    return parse_yaml(text, smap)


def parse_yaml(text: str, smap: SourceMap) -> tuple[Any, SourceMap]:
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None, smap
            walker = _Walker(loader, smap)
            walker.walk(node, ())
            if walker.problems:
                raise PlaybookError(walker.problems)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(m) for m in (exc.context, exc.problem) if m)
        start = exc.context_mark
        if start and mark and (start.line, start.column) != (mark.line, mark.column):
            message += f" (it started at line {start.line + 1}, column {start.column + 1})"
        raise PlaybookError(
            [Problem(smap.file, line, col, "", f"YAML syntax: {message}")]
        ) from None
    except yaml.YAMLError as exc:
        raise PlaybookError([Problem(smap.file, 1, 1, "", f"YAML: {exc}")]) from None
    except (_TooLarge, RecursionError):
        raise PlaybookError(
            [Problem(smap.file, 1, 1, "", "document too large or too deeply nested")]
        ) from None
    return data, smap
