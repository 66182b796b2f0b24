"""Snapshot steps with `diff: true`, through `postsync run`, on SQLite, PostgreSQL and
MariaDB: a step keeps the last snapshot it applied and applies only the lines changed
since; the rows of the lines it no longer has are acted on as `missing` says. A series
of snapshots diffed leaves what the same series reconciled in full leaves; the preview
says what the run does; a failed line is applied again; a truncated export is refused;
a kept snapshot missing, edited, replaced by a link or a FIFO, or left behind by a kill
is never trusted; a full reconcile comes every full_every runs or when asked."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import postsync_process
from tests.sync.conftest import Site, another_site
from tests.sync.test_enrolments import latest_record, report
from tests.sync.test_snapshot_enrolments import changes, state, users

HEADER = "cmd;cid;uid;rolename;enrol\n"
KEPT_NOT_TAKEN = (
    "the kept snapshot is not the one the database last took, or the step's options"
    " that name rows (course_key, user_key...) changed"
)


def step(extra: str = "", missing: str = "unenrol") -> str:
    return (
        "  - command: enrolments\n    file: enrols.csv\n    mode: snapshot\n"
        f"    missing: {missing}\n    first_snapshot: apply\n    diff: true\n{extra}"
    )


def roster(pairs: list[tuple[str, str]], role: str = "student") -> str:
    return HEADER + "".join(f"add;{c};{u};{role};\n" for c, u in pairs)


def run(site: Site, body: str, steps: str, *args: str, code: int = 0) -> dict[str, Any]:
    site.write("enrols.csv", body)
    result = site.run(*args, steps=steps)
    assert result.code == code, result.out + result.err
    if "--check" in args:  # a preview keeps no record
        return {"out": result.out}
    (site.area / "enrols.csv").unlink(missing_ok=True)
    entry: dict[str, Any] = latest_record(site)["control_files"][0]
    entry["out"] = result.out
    return entry


def kept(site: Site) -> list[Path]:
    where = site.area / ".postsync" / "snapshots"
    if not where.exists():
        return []
    return sorted(p for p in where.iterdir() if p.suffix == ".csv" and not p.name.startswith("."))


def everyone(site: Site) -> dict[str, list[tuple[Any, ...]]]:
    return {c: state(site, c) for c in ("MATH101", "MATH102", "PHYS101")}


def test_a_diffed_snapshot_applies_only_what_changed_and_acts_on_the_lines_gone(
    site: Site,
) -> None:
    first = [("MATH101", f"U000{i}") for i in range(1, 7)] + [("PHYS101", "U0001")]
    entry = run(site, roster(first), step())
    assert entry["reconcile"] == {"mode": "full", "why": "no snapshot kept yet"}
    assert entry["lines"]["changed"] == 7 and "same" not in entry["lines"]
    [path] = kept(site)
    assert path.read_text() == roster(first)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # a night: U0002 leaves MATH101, U0007 joins, the rest is the same
    second = [p for p in first if p != ("MATH101", "U0002")] + [("MATH101", "U0007")]
    preview = run(site, roster(second), step(), "--check", "--diff")
    entry = run(site, roster(second), step(), "--diff")
    assert changes(preview["out"]) == changes(entry["out"]) != []
    assert entry["reconcile"]["mode"] == "diff"
    assert entry["lines"] == {
        "total": 7, "changed": 1, "unchanged": 0, "failed": 0, "partly": 0, "same": 6,
        "missing": 1,
    }  # fmt: skip
    assert report(site) == [
        "line 8: add student U0007 in MATH101: ok",
        f"diff against the snapshot run {entry['reconcile']['since']} applied: 6 lines the"
        " same, not applied again",
        "missing: unenrol U0002 in MATH101 (manual): ok (missing from the snapshot)",
    ]
    assert "U0002" not in users(site, "MATH101") and "U0007" in users(site, "MATH101")
    assert path.read_text().splitlines()[1:] == sorted(
        roster(second).splitlines()[1:], key=roster(second).splitlines().index
    ) or set(path.read_text().splitlines()) == set(roster(second).splitlines())
    # the same file again: nothing applied, nothing changed; a full reconcile agrees
    before = everyone(site)
    entry = run(site, roster(second), step())
    assert entry["lines"]["same"] == 7 and entry["lines"]["changed"] == 0
    entry = run(site, roster(second), step(), "--full-reconcile")
    assert entry["reconcile"] == {"mode": "full", "why": "asked (--full-reconcile)"}
    assert entry["lines"]["changed"] == 0 and "missing" not in entry["lines"]
    assert everyone(site) == before


def test_a_series_diffed_leaves_what_the_series_reconciled_in_full_leaves(
    site: Site, request: pytest.FixtureRequest
) -> None:
    full = another_site(site, request, "full")
    people = [f"U{i:04d}" for i in range(1, 13)]
    courses = ["MATH101", "MATH102", "PHYS101"]
    nights = [
        [(c, u) for c in courses for u in people[:8]],
        [(c, u) for c in courses for u in people[2:10]],  # two leave, two join everywhere
        [(c, u) for c in courses[:2] for u in people[2:10]],  # PHYS101 no longer named
        [(c, u) for c in courses for u in people[2:10] if u != "U0005"] + [("PHYS101", "U0012")],
        [(c, u) for c in courses for u in reversed(people[:6])],  # order changed
    ]
    for night, pairs in enumerate(nights):
        role = "teacher" if night == 3 else "student"  # every line changed that night
        a = run(site, roster(pairs, role), step("    full_every: 100\n"))
        b = run(full, roster(pairs, role), step().replace("    diff: true\n", ""))
        assert a["reconcile"]["mode"] == ("full" if night == 0 else "diff")
        assert "reconcile" not in b
        assert a["lines"]["missing"] if "missing" in b["lines"] else "missing" not in a["lines"]
        assert a["lines"].get("missing") == b["lines"].get("missing"), night
        assert everyone(site) == everyone(full), night


def test_a_failed_line_is_applied_again_once_it_can_be(site: Site) -> None:
    pairs = [("MATH101", "U0001"), ("MATH101", "NEWBIE")]
    entry = run(site, roster(pairs), step(), code=2)
    assert [f["number"] for f in entry["failed_lines"]] == [3]
    assert "NEWBIE" not in kept(site)[0].read_text()
    site.execute("UPDATE mdl_user SET idnumber = 'NEWBIE' WHERE idnumber = 'U0030'")
    entry = run(site, roster(pairs), step())
    assert entry["lines"]["same"] == 1 and entry["lines"]["changed"] == 1
    assert "NEWBIE" in users(site, "MATH101")


def test_a_truncated_export_is_refused_and_the_kept_snapshot_stays(site: Site) -> None:
    pairs = [("MATH101", f"U{i:04d}") for i in range(1, 21)]
    guard = step("    max_changes: {unenrol: '10%'}\n")
    run(site, roster(pairs), guard)
    [path] = kept(site)
    text = path.read_text()
    entry = run(site, roster(pairs[:10]), guard, code=3)
    assert "nothing applied" in entry["error"] or "rejected" in entry["out"]
    assert len(users(site, "MATH101")) == 20 and path.read_text() == text
    assert kept(site) == [path]  # no temporary left
    entry = run(site, roster(pairs[:19]), guard)
    assert entry["reconcile"]["mode"] == "diff" and entry["lines"]["missing"] == 1


def test_full_every_and_a_changed_header_reconcile_the_whole_file(site: Site) -> None:
    pairs = [("MATH101", "U0001"), ("MATH101", "U0002")]
    every = step("    full_every: 3\n")
    modes = [run(site, roster(pairs), every)["reconcile"] for _ in range(4)]
    assert [m["mode"] for m in modes] == ["full", "diff", "diff", "full"]
    assert modes[3]["why"] == "every 3 runs (full_every)"
    other = "cid;uid;rolename;cmd;enrol\n" + "".join(f"{c};{u};student;add;\n" for c, u in pairs)
    assert run(site, other, every)["reconcile"] == {"mode": "full", "why": "the header changed"}
    changed = step("    full_every: 3\n    course_key: id\n")
    [(math101,)] = site.query("SELECT id FROM mdl_course WHERE idnumber = 'MATH101'")
    body = "cid;uid;rolename;cmd;enrol\n" + "".join(
        f"{math101};{u};student;add;\n" for _, u in pairs
    )
    entry = run(site, body, changed)
    assert entry["reconcile"]["why"] == KEPT_NOT_TAKEN and entry["lines"]["changed"] == 0


@pytest.mark.parametrize("how", ["edited", "index", "removed", "symlink", "fifo", "directory"])
def test_a_kept_snapshot_not_the_one_the_database_took_is_not_trusted(
    site: Site, how: str, tmp_path: Path
) -> None:
    pairs = [("MATH101", f"U000{i}") for i in range(1, 5)]
    run(site, roster(pairs), step())
    [path] = kept(site)
    decoy = tmp_path / "decoy.csv"
    decoy.write_text(roster(pairs[:1]))  # would unenrol three if trusted
    path.unlink()
    if how == "edited":
        path.write_text(roster(pairs[:1]))
    elif how == "index":  # its index's lines taken as another file's
        path.write_text(roster(pairs))
        path.with_suffix(".idx").write_bytes(path.with_suffix(".idx").read_bytes()[::-1])
    elif how == "symlink":
        path.symlink_to(decoy)
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "directory":
        path.mkdir()
    entry = run(site, roster(pairs[:3]), step(), code=0 if how != "directory" else 3)
    if how == "directory":  # cannot be replaced: the file is rejected, nothing applied
        assert (
            entry["error"] == f"{path} is a directory, where the step keeps the snapshot it"
            " applies: remove it"
        )
        assert len(users(site, "MATH101")) == 4
        return
    assert entry["reconcile"]["mode"] == "full", entry["reconcile"]
    assert entry["lines"]["missing"] == 1
    assert users(site, "MATH101") == ["U0001", "U0002", "U0003"]
    assert path.is_file() and not path.is_symlink() and decoy.read_text() == roster(pairs[:1])
    assert run(site, roster(pairs[:3]), step())["reconcile"]["mode"] == "diff"


def test_a_run_killed_between_its_commit_and_the_kept_snapshot_is_never_diffed_against(
    site: Site,
) -> None:
    pairs = [("MATH101", f"U000{i}") for i in range(1, 5)]
    run(site, roster(pairs), step())
    text = kept(site)[0].read_text()
    site.write("enrols.csv", roster(pairs[:3]))
    site.playbook(step())
    env = {"POSTSYNC_FAULTS": "kill=sync.committed"}
    result = postsync_process("run", site.root / "playbook.yml", env=env)
    assert result.returncode < 0 and kept(site)[0].read_text() == text  # the older one
    assert users(site, "MATH101") == ["U0001", "U0002", "U0003"]
    # a later snapshot re-lists U0004: read whole, not against the stale kept file
    (site.area / "enrols.csv").unlink(missing_ok=True)
    entry = run(site, roster(pairs), step())
    assert entry["reconcile"]["mode"] == "full"
    assert entry["reconcile"]["why"] == KEPT_NOT_TAKEN
    assert users(site, "MATH101") == ["U0001", "U0002", "U0003", "U0004"]


def test_a_diff_of_cohorts_group_members_and_users(site: Site) -> None:
    cohorts = "  - command: cohorts\n    file: cohorts.csv\n"
    members = "  - command: group_members\n    file: members.csv\n"
    people = "  - command: users\n    file: users.csv\n    user_key: username\n"
    options = "    mode: snapshot\n    first_snapshot: apply\n    diff: true\n"
    steps = (
        f"{cohorts}{options}    missing: remove\n{members}{options}    missing: remove\n"
        f"{people}{options}    missing: suspend\n    scope: {{auth: ldap}}\n"
    )
    who = ["U0101", "U0102", "U0103"]
    for user in who:  # ldap users, enrolled in MATH102
        site.execute("UPDATE mdl_user SET auth = 'ldap', username = :n WHERE idnumber = :u",
                     n=user.lower(), u=user)  # fmt: skip

    def night(gone: str = "") -> dict[str, Any]:
        listed = [u for u in who if u != gone]
        site.write(
            "cohorts.csv",
            "cmd;cidnumber;cname;userid\n" + "".join(f"add;C1;Cohort 1;{u}\n" for u in listed),
        )
        site.write(
            "members.csv",
            "courseid;groupid;userid\n" + "".join(f"MATH102;MATH102-G1;{u}\n" for u in listed),
        )
        site.write(
            "users.csv",
            "username;firstname;lastname;auth\n"
            + "".join(f"{u.lower()};L;{u};ldap\n" for u in listed),
        )
        result = site.run(steps=steps)
        assert result.code == 0, result.out + result.err
        return {f["command"]: f for f in latest_record(site)["control_files"]}

    first = night()
    assert {c: f["reconcile"]["mode"] for c, f in first.items()} == dict.fromkeys(
        ("cohorts", "group_members", "users"), "full"
    )
    second = night("U0102")
    for command, entry in second.items():
        assert entry["reconcile"]["mode"] == "diff", command
        assert entry["lines"]["same"] == 2 and entry["lines"]["missing"] == 1, command
    assert site.query(
        "SELECT u.idnumber FROM mdl_cohort_members m JOIN mdl_user u ON u.id = m.userid ORDER BY 1"
    ) == [("U0101",), ("U0103",)]
    assert site.groups_of("MATH102", "U0102") == []
    assert site.groups_of("MATH102", "U0101") != []
    assert site.query("SELECT suspended FROM mdl_user WHERE idnumber = 'U0102'") == [(1,)]
    third = night("U0102")
    assert all(f["lines"]["same"] == 2 and "missing" not in f["lines"] for f in third.values())


def test_the_record_says_how_each_snapshot_was_read(site: Site) -> None:
    run(site, roster([("MATH101", "U0001")]), step())
    record = latest_record(site)
    assert json.dumps(record["control_files"][0]["reconcile"]) == json.dumps(
        {"mode": "full", "why": "no snapshot kept yet"}
    )
    result = site.cli("show", sorted((site.area / ".postsync" / "runs").glob("*.json"))[-1])
    assert result.code == 0, result.err


def test_a_snapshots_table_made_before_diff_gets_its_columns(site: Site) -> None:
    pairs = [("MATH101", "U0001"), ("MATH101", "U0002")]
    run(site, roster(pairs), step().replace("    diff: true\n", ""))
    for column in ("base", "diffed"):
        site.execute(f"ALTER TABLE postsync_snapshots DROP COLUMN {column}")
    preview = run(site, roster(pairs[:1]), step(), "--check", "-v")
    assert "unenrol U0002" in preview["out"]
    entry = run(site, roster(pairs[:1]), step())
    assert entry["reconcile"]["mode"] == "full" and entry["lines"]["missing"] == 1
    assert run(site, roster(pairs[:1]), step())["reconcile"]["mode"] == "diff"
    assert site.query("SELECT diffed FROM postsync_snapshots") == [(1,)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_diffed_night_killed_at_every_point_ends_as_an_uninterrupted_one(
    site: Site, tmp_path: Path
) -> None:
    """Each run killed at one fault point, then the same file again and the next night:
    the site ends as the nights uninterrupted leave it (a kill between the commit and
    the kept file's rename: the next night reconciles in full)."""
    pairs = [(c, f"U{i:04d}") for c in ("MATH101", "PHYS101") for i in range(1, 9)]
    nights = [pairs, [*pairs[2:], ("MATH101", "U0020")], [*pairs[3:], ("PHYS101", "U0021")]]
    run(site, roster(nights[0]), step())
    template = tmp_path / "template"
    shutil.copytree(site.root, template, symlinks=True, ignore=shutil.ignore_patterns("template"))

    def copy(name: str) -> Site:
        root = tmp_path / name
        shutil.copytree(template, root, symlinks=True)
        url = f"sqlite:///{root / 'moodle.db'}"
        return Site(root, url, site.cli, site.tables)

    def night(here: Site, body: list[tuple[str, str]], faults: str = "") -> int:
        here.write("enrols.csv", roster(body))
        here.playbook(step())
        env = {"POSTSYNC_FAULTS": faults} if faults else {}
        return postsync_process("run", here.root / "playbook.yml", env=env).returncode

    reference = copy("reference")
    trace = tmp_path / "trace.txt"
    assert night(reference, nights[1], f"trace={trace}") == 0
    assert night(reference, nights[2]) == 0
    expected = everyone(reference)
    for course in ("MATH101", "PHYS101"):
        assert users(reference, course) == sorted(u for c, u in nights[2] if c == course)
    points = trace.read_text().splitlines()
    assert {"sync.committed", "atomic.published"} <= {p.split()[1] for p in points}
    for k in range(1, len(points) + 1):
        here = copy(f"kill{k}")
        assert night(here, nights[1], f"kill={k}") < 0, k
        assert night(here, nights[1]) == 0, k
        assert night(here, nights[2]) == 0, k
        assert everyone(here) == expected, (k, points[k - 1])


def test_a_password_in_a_users_snapshot_is_never_kept(site: Site) -> None:
    steps = (
        "  - command: users\n    file: users.csv\n    user_key: username\n"
        "    mode: snapshot\n    first_snapshot: apply\n    diff: true\n"
        "    missing: suspend\n    scope: {auth: manual}\n    update_passwords: true\n"
    )
    names = [
        n
        for (n,) in site.query(
            "SELECT username FROM mdl_user WHERE auth = 'manual' AND deleted = 0"
            " AND username NOT IN ('guest', 'admin')"
        )
    ]
    header = "username;firstname;lastname;password\n"

    def night(secret: str) -> dict[str, Any]:
        lines = [f"{n};F;L;\n" for n in names]
        site.write("users.csv", header + "".join(lines) + f"l1;L;1;{secret}\n")
        result = site.run(steps=steps)
        assert result.code == 0, result.out + result.err
        return latest_record(site)["control_files"][0]  # type: ignore[no-any-return]

    night("Sup3r-secret!")
    [path] = kept(site)
    assert "Sup3r-secret!" not in path.read_text() and "l1;L;1;***" in path.read_text()
    [(before,)] = site.query("SELECT password FROM mdl_user WHERE username = 'l1'")
    entry = night("An0ther-secret!")
    assert entry["reconcile"]["mode"] == "diff"
    assert entry["lines"]["same"] == len(names)  # all but l1's
    [(after,)] = site.query("SELECT password FROM mdl_user WHERE username = 'l1'")
    assert after != before
    assert "secret" not in path.read_text()
    entry = night("An0ther-secret!")  # the same line again: applied, never taken as the same
    assert entry["lines"]["same"] == len(names) and entry["lines"]["unchanged"] == 1
