"""A run, in three parts by lifetime and owner: its facts (fixed once prepared,
runner.step.facts), its services (opened on first use, closed when it ends,
runner.step.services) and its ledger (what its steps add, runner.step.ledger). The
engine holds the three; each step gets the parts its signature names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.core.secrets import redact
from runner.core.text import printable
from runner.step.facts import RunFacts
from runner.step.ledger import Ledger, Outcomes
from runner.step.scope import StepScope
from runner.step.services import Services

if TYPE_CHECKING:
    from runner.playbook.model import Step


def template_context(
    facts: RunFacts, outcomes: Outcomes, extra: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """What templates see: `now`, `env`, `area`, `run` (its id, host and results so far;
    `errors`: each failed step's message by its name, on one line, secrets masked), the
    variables, and `extra` (e.g. a per-file treatment's `file`)."""
    context: dict[str, Any] = {
        "now": facts.now,
        "env": facts.environ,
        "area": str(facts.area),
        "run": {
            "id": facts.run_id,
            "host": facts.host,
            "check": facts.check,
            "failed_lines": outcomes.failed_lines,
            "lines_ok": outcomes.lines_ok,
            "failed": outcomes.failed,
            "step_failed": outcomes.step_failed,
            "steps": dict(outcomes.statuses),
            "errors": {
                name: printable(redact(step.error))
                for name, step in outcomes.steps.items()
                if step.status == "failed" and step.error
            },
        },
        **facts.variables,
    }
    if extra:
        context.update(extra)
    return context


@dataclass
class Run:
    """The run as the engine holds it. `facts` is replaced (never changed) only while
    the run is prepared."""

    facts: RunFacts
    services: Services
    ledger: Ledger

    def template_context(self, extra: Mapping[str, object] | None = None) -> dict[str, Any]:
        return template_context(self.facts, self.ledger, extra)

    def scope(
        self,
        step: Step,
        extra: Mapping[str, object] | None = None,
        dirs: dict[str, str] | None = None,
        base: Mapping[str, object] | None = None,
    ) -> StepScope:
        """A step's template scope (`base`: the run's template context, when one step
        makes many scopes)."""
        if base is None:
            base = self.template_context()
        return StepScope(self.facts, self.services.storage, step, base, extra, dirs)

    def close(self) -> None:
        """The run's services closed; its facts and ledger stay (the result reads them)."""
        self.services.close()
