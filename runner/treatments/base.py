"""What a treatment is: configure (render and check its parameters), plan, apply.

Its parameters' JSON Schema and whether it acts per control file are in the registry
(runner.playbook.registry), which the schema is built from without importing this.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.step.context import RunContext
    from runner.step.protocol import Action, Done, Plan
    from runner.step.scope import StepScope


class Treatment(Protocol):
    """A post-treatment. Its docstring is its user documentation (README reference)."""

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> Any:
        """Render templates and check the parameters; raise PlaybookError. Reads only.

        A per-file treatment is configured once per control file (`file` in scope).
        """

    def plan(self, config: Any, run: RunContext) -> Plan:
        """Read the current state and list the actions. Never changes anything.

        A per-file treatment gets a list of (FileOutcome, its configure() result).
        """

    def apply(self, actions: Sequence[Action], run: RunContext) -> Iterator[Done]:
        """Carry the actions out, yielding each as it completes."""
