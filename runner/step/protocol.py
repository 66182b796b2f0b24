"""The step protocol: a step plans Actions (read only), then applies them, yielding Done."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.core.errors import StepError
from runner.core.text import plural


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


def apply_each(actions: Sequence[Action], do: Callable[[Action], str], noun: str) -> Iterator[Done]:
    """Carry out each action with `do` (which returns a note); one failing action does not
    stop the others, and the step fails at the end naming the first few."""
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
