"""What a treatment is: configure (render and check its parameters), plan, apply.

Its parameters' JSON Schema and whether it acts per control file are in the registry
(runner.playbook.registry), which the schema is built from without importing this.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.step.facts import RunFacts
    from runner.step.ledger import Ledger
    from runner.step.protocol import Action, Done, Plan
    from runner.step.scope import StepScope
    from runner.step.services import Services


class Treatment(Protocol):
    """A post-treatment. Its docstring is its user documentation (README reference)."""

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> Any:
        """Render templates and check the parameters; raise PlaybookError. Reads only.

        A per-file treatment is configured once per control file (`file` in scope).
        """

    def plan(self, config: Any, run: RunFacts, ledger: Ledger, services: Services) -> Plan:
        """Read the current state and list the actions. Never changes anything (but a
        preview's ledger: what the run would add).

        A per-file treatment gets a list of (FileOutcome, its configure() result). An
        implementation narrows `ledger` and `services` to the protocols it uses
        (runner.step.ledger, runner.step.services): `object` for none.
        """

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: Ledger, services: Services
    ) -> Iterator[Done]:
        """Carry the actions out, yielding each as it completes."""
