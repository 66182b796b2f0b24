"""clean_empty_groups' part of the run's change journal (runner.record.journal): each
group and grouping it deletes, the row as it was and its grouping links, under its own
part in the run's directory (NNN_clean_empty_groups.journal, numbered after the sync's
parts), so that the changes can be told to Moodle afterwards and undone.

A group's enrolment key is a secret (students type it to join the group): the journal
says only whether the group had one. The lines are read inside the deletion's
transaction, just before the rows go, and the part is published before it commits;
a preview writes the same lines from its plan, into its own temporary directory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.core.jsontext import compact, in_order
from runner.record import journal
from runner.record.journal import Spool
from runner.treatments.groups_rules import chunks

if TYPE_CHECKING:
    from runner.db.raw import Raw
    from runner.step.facts import RunFacts
    from runner.step.protocol import Action

#: the step's name in its part's name and its lines' `step`
STEP = "clean_empty_groups"
#: never journaled: a group's enrolment key (its presence is)
SECRET = "enrolmentkey"
#: a line's kind by the action's
KIND = {"group": "group_deleted", "grouping": "grouping_deleted"}
#: a line's fields between its `seq` and its course's id, by the action's kind
_HEADS = {
    kind: f'"kind":{compact(name)},"file":null,"line":null,"step":{compact(STEP)},"courseid":'
    for kind, name in KIND.items()
}


def _links(raw: Raw, t: Any, kind: str, ids: list[int], gone: set[int]) -> dict[int, list[int]]:
    """The grouping links of deleted groups (kind group: their groupings) or groupings
    (kind grouping: their groups but those deleted before: `gone`, told with them)."""
    own, other = ("groupid", "groupingid") if kind == "group" else ("groupingid", "groupid")
    found: dict[int, list[int]] = {}
    for chunk in chunks(ids, 2000):
        for key, value in raw.select_in(t.groupings_groups, [own, other], own, chunk):
            if kind == "group" or int(value) not in gone:
                found.setdefault(int(key), []).append(int(value))
    return {key: sorted(values) for key, values in found.items()}


def rows(
    conn: Any, t: Any, kind: str, ids: Sequence[int], gone: set[int], *, empty: bool = False
) -> dict[int, tuple[int, dict[str, Any]]]:
    """The rows of groups or groupings (`kind`) as they are, by id: their course, and
    every other column the site's table has but the enrolment key, with the ids of
    their grouping links (a grouping's groups but the deleted ones, `gone`), keys in
    sorted order; `empty`: only the groups that have no member (the deletion's
    re-check, in the same statement)."""
    from sqlalchemy import inspect

    from runner.db.raw import Raw

    table = t.groups if kind == "group" else t.groupings
    wanted = [int(i) for i in ids if int(i) > 0]  # a preview's new groups are no row yet
    if not wanted:
        return {}
    # the columns the site's table has (an older Moodle lacks some of the newest's)
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    names = [c.name for c in table.c if c.name in present and c.name not in (SECRET, "courseid")]
    secret = SECRET in present
    raw = Raw(conn)
    q = raw.quote
    assert kind == "group" or not empty, "only groups have members"
    unfilled = (
        f"NOT EXISTS (SELECT 1 FROM {raw.name(t.groups_members)} m"
        f" WHERE m.{q('groupid')} = {raw.name(table)}.{q('id')})"
        if empty
        else ""
    )
    linked = "groupings" if kind == "group" else "groups"
    # each row's keys in sorted order, as its journal line has them: a dict keeps the
    # order its keys were first given in, values set later included
    blank = dict.fromkeys(sorted([*names, linked, *(["has_enrolmentkey"] if secret else [])]))
    at, course = names.index("id"), len(names)
    found: dict[int, tuple[int, dict[str, Any]]] = {}
    for chunk in chunks(wanted, 2000):
        selected = raw.select_in(
            table, [*names, "courseid", *([SECRET] if secret else [])], "id", chunk, also=unfilled
        )
        for row in selected:
            values = blank.copy()
            # the course and the key come after the names
            values.update(zip(names, row, strict=False))
            if secret:
                values["has_enrolmentkey"] = bool(row[-1])
            found[int(row[at])] = (int(row[course]), values)
    links = _links(raw, t, kind, list(found), gone)
    for key, (_course, values) in found.items():
        values[linked] = links.get(key, [])
    return found


#: a row about to be deleted: its course, and its other fields
Found = dict[tuple[str, int], tuple[int, dict[str, Any]]]


def tell(out: Spool, actions: Sequence[Action], found: Found) -> list[str]:
    """The journal lines of the deleted `actions` (data: (kind, id)), in plan order:
    their texts, one per action ("": not deleted). A line is the row as it was, its
    course on the line's `courseid`: no file nor line, the step instead."""
    texts: list[str] = []
    add = texts.append
    seq = out.first + out.count
    kinds: Counter[str] = Counter()
    for action in actions:
        row = found.get(action.data)
        if row is None:
            add("")
            continue
        course, fields = row  # its keys in order (rows), never none (its id)
        add(f'{{"seq":{seq},{_HEADS[action.data[0]]}{course},{in_order(fields)[1:]}')
        kinds[KIND[action.data[0]]] += 1
        seq += 1
    out.add_all([text for text in texts if text], kinds)
    return texts


def shown(actions: list[Action], texts: list[str]) -> list[Action]:
    """--diff: each action with its journal line under it."""
    return [
        replace(action, diff=f"        journal: {text}") if text else action
        for action, text in zip(actions, texts, strict=True)
    ]


def read(conn: Any, t: Any, ids: dict[str, list[int]], *, empty: bool = False) -> Found:
    """The rows about to be deleted (`ids` by kind), keyed as the actions' data (a
    grouping's groups deleted with it are on their own lines, not on its); `empty`:
    only the groups still without a member."""
    found: Found = {}
    gone = set(ids.get("group", ()))
    for kind, chosen in ids.items():
        for row_id, row in rows(conn, t, kind, chosen, gone, empty=empty).items():
            found[(kind, row_id)] = row
    return found


@contextmanager
def part(run: RunFacts, where: Path | None) -> Iterator[Spool]:
    """The step's part at `where` (services.journal_part): published by
    runner.record.journal.publish, removed when the block ends otherwise; None: the
    lines only numbered and shown."""
    if where is None:
        yield Spool(None, 1)
        return
    with journal.spool(where, run.display(where)) as spool:
        yield spool


def withdraw(out: Spool, where: Path) -> None:
    """The part of a transaction that did not commit: no change to tell."""
    if out.published:
        where.unlink(missing_ok=True)
