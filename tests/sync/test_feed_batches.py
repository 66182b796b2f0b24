"""The users, cohorts and groups feeds give the same outcomes and the same site
whatever the batch size: a line sees what the lines of earlier batches did (a user
created, then updated, suspended, deleted; a cohort created, then filled and freed; a
grouping created, then groups put in it), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sync.conftest import Site, another_site
from tests.sync.test_enrolments import report

FEEDS = {
    "users": (
        "userimport.csv",
        "username;idnumber;firstname;lastname;email;suspended;deleted\n"
        + "".join(
            f"b{i};B{i};F;L;b{i}@example.org;;\n"
            f"b{i};B{i};F{i};L;b{i}@example.org;1;\n"
            + (f"b{i};B{i};F;L;;;1\n" if i % 3 == 0 else "")
            + (f"b{i};B{i};Back;L;b{i}@example.org;0;\n" if i % 3 == 0 else "")
            for i in range(12)
        )
        + "u0001;U0001;A;B;x@example.org;;1\nbad one;X;A;B;;;\n"
        # a rename chain and a swap through a name of the file's
        + "u0003.old;U0003;A;B;;;\nu0003;U0002;A;B;;;\n"
        + "t4;U0004;A;B;;;\nu0004;U0005;A;B;;;\nu0005;U0004;A;B;;;\n",
    ),
    "cohorts": (
        "cohorts.csv",
        "cmd;cname;cidnumber;userid\n"
        + "".join(
            f"add;C{i % 3};C{i % 3};U{i + 1:04d}\n"
            + (f"del;C{i % 3};C{i % 3};U{i:04d}\n" if i % 4 == 0 and i else "")
            for i in range(14)
        )
        + "free;C1;C1;\nadd;C1;C1;U0001\ndel;C2;C2;\nadd;C2;C2;U0002\nadd;C0;C0;U9999\n",
    ),
    "groups": (
        "groups.csv",
        "type;courseid;name;idnumber;description;grouping\n"
        + "".join(
            f"grouping;MATH101;P{i};P{i};;\n"
            f"group;MATH101;S{i};S{i};d{i};P{i}\n"
            f"group;MATH101;S{i} bis;S{i};d{i} bis;P{max(i - 1, 0)}\n"
            for i in range(8)
        )
        + "group;MATH101;Z;Z;;NOPE\n",
    ),
}
#: ids, times, and what carries them (a deleted user's username has the time in it)
VARYING = {
    "id",
    "timecreated",
    "timemodified",
    "timeadded",
    "username",
    "email",
    "instanceid",
    "path",
    "contextid",
    "cohortid",
    "groupid",
    "groupingid",
}
TABLES = (
    "mdl_user",
    "mdl_context",
    "mdl_cohort",
    "mdl_cohort_members",
    "mdl_groups",
    "mdl_groupings",
    "mdl_groupings_groups",
)


def canonical(site: Site) -> dict[str, Any]:
    """The tables the feeds write, without ids and times (which differ from site to
    site)."""
    out = {}
    dump = site.dump()
    for table in TABLES:
        columns = [c.name for c in site.tables.metadata.tables[table].columns]
        keep = [i for i, c in enumerate(columns) if c not in VARYING]
        out[table] = sorted(tuple(str(r[i]) for i in keep) for r in dump[table])
    return out


@pytest.mark.parametrize("command", sorted(FEEDS))
def test_batch_size_changes_nothing(
    command: str,
    site: Site,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    cli: Any,
) -> None:
    import runner.sync.apply

    name, body = FEEDS[command]
    step = f"  - command: {command}\n    file: {name}\n"
    outcomes, sites = {}, {}
    for size in (2000, 1, 2, 5):
        here = site if size == 2000 else another_site(site, request, f"feed{size}")
        monkeypatch.setattr(runner.sync.apply, "BATCH", {"": size, "sqlite": size})
        here.write(name, body)
        result = here.run(steps=step)
        assert result.code in (0, 2), result.out + result.err
        outcomes[size] = report(here)
        sites[size] = canonical(here)
        again = here.run(steps=step)
        assert "0 changed" in again.out, again.out
    assert any("failed" in line for line in outcomes[2000])
    for size in (1, 2, 5):
        assert outcomes[size] == outcomes[2000], size
        for table in TABLES:
            a, b = sites[size][table], sites[2000][table]
            assert a == b, repr((size, table, sorted(set(a) - set(b)), sorted(set(b) - set(a))))
