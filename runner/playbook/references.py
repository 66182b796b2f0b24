"""Static template checks: syntax and the names each template uses, before any change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.core.errors import PlaybookError, Problem
from runner.playbook import registry
from runner.playbook.model import Playbook
from runner.playbook.source import JsonPath
from runner.playbook.templating import RESERVED, Renderer, strings_in

_STEP_NAMES = RESERVED - {"file"}


def check_references(playbook: Playbook, renderer: Renderer, extra: Iterable[str]) -> None:
    """Raise PlaybookError for every template with a syntax error or an unknown name."""
    problems: list[Problem] = []
    known_globals = set(renderer.env.globals)
    extra_names = set(extra)
    declared: set[str] = set(extra_names)

    def check(
        value: Any, path: JsonPath, known: set[str], *, expression: bool = False, hint: str = ""
    ) -> None:
        for text, where in strings_in(value, path):
            try:
                names = renderer.undeclared(text, where, expression=expression)
            except PlaybookError as exc:
                problems.extend(exc.problems)
                continue
            for name in sorted(names - known - known_globals):
                why = hint if name in RESERVED and hint else "define it under vars: or with -e"
                problems.append(
                    playbook.source.problem(where, f"undefined variable {name!r} ({why})")
                )
            for message in renderer.unknown_fields(text, expression=expression):
                problems.append(playbook.source.problem(where, message))

    # vars are rendered in order, before `area` is known
    for name, raw in playbook.vars:
        check(
            raw,
            ("vars", name),
            declared | {"now", "env", "run"},
            hint="vars may use now, env, run and the vars above them",
        )
        declared.add(name)
    top_known = declared | {"now", "env", "run"}
    check(playbook.area, ("area",), top_known)
    for i, root in enumerate(playbook.roots):
        check(root, ("roots", i), top_known)
    for name, value in playbook.storage:
        check(value, ("storage", name), top_known)
    if playbook.database is not None:
        check(playbook.database, ("database",), top_known)

    for step in playbook.steps:
        known = (
            declared
            | _STEP_NAMES
            | ({"file"} if registry.per_file(step.section, step.kind) else set())
        )
        hint = "`file` exists only in per-file treatments"
        check(step.params, step.path, known, hint=hint)
        check(step.name, (*step.item_path, "name"), known, hint=hint)
        if isinstance(step.when, str):
            check(step.when, (*step.item_path, "when"), known, expression=True, hint=hint)
    if problems:
        raise PlaybookError(problems)
