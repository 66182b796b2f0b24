"""What a treatment is: a JSON Schema for its parameters, then configure, plan, apply."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.context import RunContext, StepScope


@dataclass(frozen=True)
class Action:
    """One change a step will make: printed by the preview, then applied.

    `verb`, `target` and `detail` are what users see; `data` is the treatment's own
    payload for `apply` and is never printed.
    """

    verb: str
    target: str
    detail: str = ""
    data: Any = field(default=None, compare=False, repr=False)
    diff: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Done:
    """What applying an action did, when it differs from the plan (e.g. a vanished file)."""

    action: Action
    note: str = ""


@dataclass
class Plan:
    """A step's plan: the actions, and a summary for the step line."""

    actions: list[Action] = field(default_factory=list)
    summary: str = ""
    #: why nothing is to be done, when the step is skipped rather than ok
    skip_reason: str | None = None
    #: what cannot be done: the step fails once the planned actions are applied
    errors: list[str] = field(default_factory=list)


class Treatment(Protocol):
    """A post-treatment. Its docstring is its user documentation (README reference)."""

    #: JSON Schema of the parameters (the value under the treatment's key)
    schema: Mapping[str, Any]
    #: True when the treatment acts once per processed control file (`file` in templates)
    per_file: bool

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


def apply_each(actions: Sequence[Action], do: Callable[[Action], str], noun: str) -> Iterator[Done]:
    """Carry out each action with `do` (which returns a note); one failing action does not
    stop the others, and the step fails at the end naming the first few."""
    from runner.errors import StepError
    from runner.text import plural

    failures: list[str] = []
    for action in actions:
        try:
            note = do(action)
        except StepError as exc:
            failures.append(str(exc))
            continue
        except OSError as exc:
            where = exc.filename or action.target
            failures.append(f"{where}: {exc.strerror or exc}")
            continue
        yield Done(action, note)
    if failures:
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        raise StepError(f"{plural(len(failures), noun)} failed: " + "; ".join(failures[:3]) + more)
