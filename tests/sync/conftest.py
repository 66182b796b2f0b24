"""A Moodle site per test, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from runner.db.tables import MoodleTables, moodle_tables
from tests.conftest import CLI, Result

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'moodle.db'}"
    server = request.getfixturevalue(f"{request.param}_server")
    return str(server.create_database(f"site{next(_names)}"))


@dataclass
class Site:
    """A demo Moodle site (postsync db init --demo) with an area and a playbook."""

    root: Path
    url: str
    cli: CLI
    tables: MoodleTables

    @property
    def area(self) -> Path:
        return self.root / "area"

    def write(self, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = self.area / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    def playbook(self, steps: str, extra: str = "") -> Path:
        path = self.root / "playbook.yml"
        path.write_text(
            f'name: Sync test\narea: area\ndatabase: "{self.url}"\n{extra}sync:\n{steps}'
        )
        return path

    def run(self, *args: object, steps: str | None = None) -> Result:
        playbook = self.playbook(steps) if steps is not None else self.root / "playbook.yml"
        return self.cli("run", playbook, *args)

    def add_member(
        self, course: str, user: str, group: str, component: str = "", item: int = 0
    ) -> None:
        """A group membership written straight to the table, as Moodle (or a plugin
        named by `component`) would; a course, user or group the site lacks fails."""
        ((gid, uid),) = self.query(
            "SELECT g.id, u.id FROM mdl_groups g, mdl_course c, mdl_user u"
            " WHERE c.id = g.courseid AND c.idnumber = :c AND g.name = :g AND u.idnumber = :u",
            c=course,
            g=group,
            u=user,
        )
        self.execute(
            "INSERT INTO mdl_groups_members (groupid, userid, timeadded, component, itemid)"
            " VALUES (:g, :u, 0, :component, :item)",
            g=gid,
            u=uid,
            component=component,
            item=item,
        )

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def execute(self, sql: str, **params: Any) -> None:
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(text(sql), params)
        finally:
            engine.dispose()

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, for before/after comparisons."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return {
                    table.name: [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
                    for table in self.tables.all
                }
        finally:
            engine.dispose()

    def enrolled(self, course: str, user: str) -> list[tuple[Any, ...]]:
        """(role shortname, enrolment status) of the user in the course."""
        return self.query(
            "SELECT r.shortname, ue.status FROM mdl_user u"
            " JOIN mdl_user_enrolments ue ON ue.userid = u.id"
            " JOIN mdl_enrol e ON e.id = ue.enrolid"
            " JOIN mdl_course c ON c.id = e.courseid"
            " JOIN mdl_context x ON x.instanceid = c.id AND x.contextlevel = 50"
            " LEFT JOIN mdl_role_assignments ra ON ra.userid = u.id AND ra.contextid = x.id"
            " LEFT JOIN mdl_role r ON r.id = ra.roleid"
            " WHERE u.idnumber = :user AND c.idnumber = :course ORDER BY r.shortname",
            user=user,
            course=course,
        )

    def groups_of(self, course: str, user: str) -> list[str]:
        return [
            r[0]
            for r in self.query(
                "SELECT g.name FROM mdl_groups g JOIN mdl_groups_members m ON m.groupid = g.id"
                " JOIN mdl_user u ON u.id = m.userid JOIN mdl_course c ON c.id = g.courseid"
                " WHERE u.idnumber = :user AND c.idnumber = :course ORDER BY g.name",
                user=user,
                course=course,
            )
        ]


@pytest.fixture
def site(db_url: str, tmp_path: Path, cli: CLI) -> Iterator[Site]:
    result = cli("db", "init", db_url, "--demo")
    assert result.code == 0, result.err
    (tmp_path / "area").mkdir()
    yield Site(tmp_path, db_url, cli, moodle_tables())


def another_site(site: Site, request: pytest.FixtureRequest, name: str) -> Site:
    """A second demo site on the same kind of database as `site` (its own area)."""
    root = site.root / name
    (root / "area").mkdir(parents=True)
    if "sqlite" in site.url:
        url = f"sqlite:///{root / 'moodle.db'}"
    else:
        kind = request.node.callspec.params["db_url"]
        url = str(request.getfixturevalue(f"{kind}_server").create_database(name))
    assert site.cli("db", "init", url, "--demo").code == 0
    return Site(root, url, site.cli, site.tables)


ENROLMENTS_STEP = "  - command: enrolments\n    file: enrols*.csv\n"
