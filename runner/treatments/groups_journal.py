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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
) -> dict[int, dict[str, Any]]:
    """The rows of groups or groupings (`kind`) as they are, by id: every column the
    site's table has but the enrolment key, and the ids of their grouping links (a
    grouping's groups but the deleted ones, `gone`); `empty`: only the groups that
    have no member (the deletion's re-check, in the same statement)."""
    from sqlalchemy import inspect

    from runner.db.raw import Raw

    table = t.groups if kind == "group" else t.groupings
    wanted = [int(i) for i in ids if int(i) > 0]  # a preview's new groups are no row yet
    if not wanted:
        return {}
    # the columns the site's table has (an older Moodle lacks some of the newest's)
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    names = [c.name for c in table.c if c.name in present and c.name != SECRET]
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
    columns = [*names, *([SECRET] if secret else [])]
    found: dict[int, dict[str, Any]] = {}
    for chunk in chunks(wanted, 2000):
        for row in raw.select_in(table, columns, "id", chunk, also=unfilled):
            values = dict(zip(names, row, strict=False))  # the key, if any, comes last
            if secret:
                values["has_enrolmentkey"] = bool(row[-1])
            found[int(values["id"])] = values
    links = _links(raw, t, kind, list(found), gone)
    for key, values in found.items():
        values["groupings" if kind == "group" else "groups"] = links.get(key, [])
    return found


#: a row about to be deleted: its course, and its other fields
Found = dict[tuple[str, int], tuple[int, dict[str, Any]]]


def tell(out: Spool, actions: Sequence[Action], found: Found) -> list[str]:
    """The journal lines of the deleted `actions` (data: (kind, id)), in plan order:
    their texts, one per action ("": not deleted). A line is the row as it was, its
    course on the line's `courseid`."""
    texts = []
    for action in actions:
        row = found.get(action.data)
        if row is None:
            texts.append("")
            continue
        course, fields = row
        kind = KIND[action.data[0]]
        texts.append(journal.step_change(out, STEP, kind, course, fields))
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
            found[(kind, row_id)] = (int(row.pop("courseid")), row)
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
