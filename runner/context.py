"""The explicit context passed to steps: the run's state and a step's template scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import PlaybookError, Problem
from runner.paths import confinement_error, display, resolve_under

if TYPE_CHECKING:
    from runner.playbook import Playbook, Step
    from runner.templating import Renderer
    from runner.yamlsource import JsonPath


@dataclass
class RunContext:
    """Everything a run knows; passed explicitly to every step."""

    playbook: Playbook
    run_id: str
    check: bool
    now: datetime
    area: Path
    roots: tuple[Path, ...]
    renderer: Renderer
    variables: dict[str, Any]
    environ: dict[str, str]
    #: control files that a sync step of the playbook would process (never purged)
    protected: frozenset[Path] = frozenset()
    failed_lines: int = 0
    lines_ok: int = 0
    step_status: dict[str, str] = field(default_factory=dict)

    def template_context(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        context: dict[str, Any] = {
            "now": self.now,
            "env": self.environ,
            "area": str(self.area),
            "run": {
                "id": self.run_id,
                "check": self.check,
                "failed_lines": self.failed_lines,
                "lines_ok": self.lines_ok,
                "steps": dict(self.step_status),
            },
            **self.variables,
        }
        if extra:
            context.update(extra)
        return context

    def display(self, path: Path) -> str:
        return display(path, self.area)


@dataclass
class StepScope:
    """Renders and confines one step's parameters, reporting errors at their location."""

    run: RunContext
    step: Step
    extra: Mapping[str, Any] | None = None

    def _path(self, key: tuple[str | int, ...]) -> JsonPath:
        return (*self.step.path, *key)

    def render(self, value: Any, *key: str | int) -> Any:
        return self.run.renderer.render_data(
            value, self.run.template_context(self.extra), self._path(key)
        )

    def confine(self, raw: str, *key: str | int) -> Path:
        """The absolute, symlink-resolved path of `raw`, or PlaybookError if outside."""
        resolved = resolve_under(raw, self.run.area)
        reason = confinement_error(raw, resolved, self.run.area, self.run.roots)
        if reason:
            raise PlaybookError([self.error(reason, *key)])
        return resolved

    def error(self, message: str, *key: str | int) -> Problem:
        return self.run.playbook.source.problem(self._path(key), message)
