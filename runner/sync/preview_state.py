"""A preview's sync state (runner.step.preview): what the preview's earlier batches
left, read over the database's rows, and each batch's state kept instead of written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.step.preview import Withheld
from runner.sync.base import Enrolment


@dataclass
class BatchState:
    """The state of a batch's (course, context, user) pairs, as runner.sync.state holds
    it (the same dicts)."""

    withheld: Withheld
    enrolments: dict[tuple[int, int], Enrolment]
    course_enrolments: dict[tuple[int, int], set[int]]
    roles_of: dict[tuple[int, int], dict[tuple[int, str, int], int | None]]
    members: dict[tuple[int, int], dict[int, int | None]]


def over_withheld(state: BatchState, pairs: set[tuple[int, int, int]]) -> None:
    """A preview: the state the preview's earlier batches left, over the database's."""
    kept_pairs = state.withheld.pairs.get_all(pairs)
    for pair in pairs:
        course, context, user = pair
        kept = kept_pairs.get(pair)
        if kept is None:
            state.withheld.seen(course, user, tuple(state.members.get((course, user), ())))
            continue
        enrolments, roles, members = kept
        for enrolid in state.course_enrolments.pop((course, user), ()):
            del state.enrolments[(enrolid, user)]
        enrolids = set()
        for i in range(0, len(enrolments), 5):
            enrolid, row_id, status, start, end = enrolments[i : i + 5]
            state.enrolments[(enrolid, user)] = Enrolment(row_id, status, start, end)
            enrolids.add(enrolid)
        state.course_enrolments[(course, user)] = enrolids
        state.roles_of[(context, user)] = {
            (roles[i], roles[i + 1], roles[i + 2]): roles[i + 3] for i in range(0, len(roles), 4)
        }
        state.members[(course, user)] = dict(zip(members[0::2], members[1::2], strict=True))


def withhold(state: BatchState, pairs: set[tuple[int, int, int]]) -> None:
    """A preview: keep the batch's state of its pairs instead of writing changes."""
    states = []
    for pair in pairs:
        course, context, user = pair
        enrolments: list[Any] = []
        for enrolid in state.course_enrolments.get((course, user), ()):
            e = state.enrolments[(enrolid, user)]
            enrolments += (enrolid, e.id, e.status, e.timestart, e.timeend)
        roles: list[Any] = []
        for (roleid, component, itemid), row_id in state.roles_of.get((context, user), {}).items():
            roles += (roleid, component, itemid, row_id)
        members: list[Any] = []
        for groupid, row_id in state.members.get((course, user), {}).items():
            members += (groupid, row_id)
        states.append((pair, (tuple(enrolments), tuple(roles), tuple(members))))
    state.withheld.keep(states)
