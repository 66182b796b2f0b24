"""clean_empty_groups: which empty groups and groupings stay, and why.

An empty group goes only when nothing keeps it. What keeps it, in this order (the
first reason is the one shown): an enrol instance fills it; it has a picture or
files; a groups file of the run declares it; no feed made it (by default: see
`groups`); a pattern of `exclude` matches its name or idnumber; it is younger than
`min_age_days`. A grouping left with no group is kept by the last three.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from runner.core.text import plural

if TYPE_CHECKING:
    from runner.step.preview import Withheld

#: which empty groups may go: those a feed made (the default), also those with an
#: idnumber, or every one (tool_sync's cleanup)
MODES = ("feed", "with_idnumber", "all_empty")
#: enrol plugins whose instances fill a group of the course (enrol.customint2: the
#: group's id), as Moodle's cohort and meta-link syncs do
FILLING_PLUGINS = ("cohort", "meta")
DAY = 86400
#: ids per statement
CHUNK = 900
#: (id, name, idnumber, course shortname) of a group or grouping
Row = tuple[int, str, str, str]


@dataclass(frozen=True)
class Why:
    """Why an empty group (grouping) stays: the reason shown beside it, and the kind
    of reason, which counts the ones not named."""

    text: str
    kind: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class GroupsConfig:
    groupings: bool
    all_courses: bool
    #: max_changes' delete_group (or max_deletions): (a count or 'N%', its name)
    max_deletions: tuple[int | str, str] | None
    groups: str = "feed"
    exclude: tuple[str, ...] = ()
    min_age_days: int = 0


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterator[list[int]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def excluded(patterns: Sequence[str], name: str, idnumber: str) -> str | None:
    """The first pattern matching the name or the idnumber (case ignored), if any."""
    values = [v.casefold() for v in (name, idnumber) if v]
    for pattern in patterns:
        if any(fnmatch.fnmatchcase(v, pattern.casefold()) for v in values):
            return pattern
    return None


def filled_or_with_files(conn: Any, t: Any, ids: list[int]) -> dict[int, Why]:
    """Empty groups that stay, and why: a group an enrol instance fills (cohort
    sync's group, emptied for now: the sync refills it), a group with a picture or
    files in its description (Moodle's own deletion removes those files from
    moodledata; postsync cannot)."""
    from runner.db.raw import Raw

    raw = Raw(conn)
    q, e, g = raw.quote, t.enrol, t.groups
    kept: dict[int, Why] = {}
    for part in chunks([gid for gid in ids if gid > 0]):
        where, params = raw.where_in(e, "customint2", part)
        sql = (
            f"SELECT {q('customint2')}, {q('enrol')} FROM {raw.name(e)}"
            f" WHERE {q('enrol')} IN ({raw.marks(len(FILLING_PLUGINS))}) AND {where}"
        )
        for gid, plugin in conn.exec_driver_sql(sql, (*FILLING_PLUGINS, *params)).fetchall():
            kept[int(gid)] = Why(
                f"the {plugin} enrolment instance of the course fills it",
                "filled by an enrol instance",
            )
        where, params = raw.where_in(g, "id", part)
        sql = (
            f"SELECT {q('id')} FROM {raw.name(g)} WHERE {where}"
            f" AND ({q('picture')} != 0 OR {q('description')} LIKE {raw.mark})"
        )
        for (gid,) in conn.exec_driver_sql(sql, (*params, "%@@PLUGINFILE@@%")).fetchall():
            kept.setdefault(
                int(gid), Why("it has a picture or files, which only Moodle deletes", "with files")
            )
    return kept


def _age(created: int, now: int, days: int) -> str | None:
    """Why a row created at `created` is too young to go (None: it is old enough)."""
    if now - created >= days * DAY:
        return None
    age = max(now - created, 0) // DAY
    when = "less than a day ago" if age < 1 else f"{plural(age, 'day')} ago"
    return f"created {when}, less than min_age_days {days}"


def selected(
    conn: Any,
    t: Any,
    config: GroupsConfig,
    kind: str,
    rows: Sequence[Row],
    now: int,
    withheld: Withheld | None,
    readable: bool = True,
) -> dict[int, Why]:
    """The rows of `kind` (groups, groupings) that `groups`, `exclude` and
    `min_age_days` keep, and why.

    A row below zero is one a preview's sync would have made (now, as the feed's);
    the feed's rows are those postsync recorded (runner.db.feed_groups), and those a
    preview's sync would have recorded (none, when the record is not `readable`)."""
    if config.groups == "all_empty" and not config.exclude and not config.min_age_days:
        return {}  # every empty one may go
    from runner.db import feed_groups

    facts: dict[int, tuple[int, bool]] = {}
    if config.groups != "all_empty" or config.min_age_days:  # else neither matters
        ids = [row[0] for row in rows if row[0] > 0]
        facts = feed_groups.facts(conn, t, kind, ids, readable)
    made = withheld.feed_made if withheld is not None else {}
    kept: dict[int, Why] = {}
    for item, name, idnumber, _course in rows:
        created, feed = (now, True) if item < 0 else facts.get(item, (0, False))
        feed = feed or (kind, item) in made
        if config.groups == "feed" and not feed:
            kept[item] = Why("no feed made it", "not made by a feed")
        elif config.groups == "with_idnumber" and not feed and not idnumber:
            kept[item] = Why("no feed made it, no idnumber", "not made by a feed")
        elif (pattern := excluded(config.exclude, name, idnumber)) is not None:
            kept[item] = Why(f"exclude {pattern!r} matches it", "excluded")
        elif config.min_age_days and (young := _age(created, now, config.min_age_days)):
            kept[item] = Why(young, "younger than min_age_days")
    return kept


#: how many kept groups the step's detail names (the others are counted)
SHOWN = 10


def kept_summary(noun: str, kept: Sequence[tuple[Row, Why]]) -> str:
    """`kept 2 empty groups: "A" in course X (why); ...`, the first SHOWN named, the
    rest counted by kind of reason."""
    ordered = sorted(kept, key=lambda k: (k[0][3], k[0][1], k[0][0]))
    shown = "; ".join(f'"{row[1]}" in course {row[3]} ({why})' for row, why in ordered[:SHOWN])
    text = f"kept {plural(len(kept), noun)}: {shown}"
    rest = ordered[SHOWN:]
    if rest:
        counts: dict[str, int] = {}
        for _row, why in rest:
            counts[why.kind] = counts.get(why.kind, 0) + 1
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        text += f" and {len(rest)} more ({kinds})"
    return text
