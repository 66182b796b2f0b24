"""What a control file's lines name, resolved for the whole file: users, courses (with
their context), roles, enrol instances and groups; and the instances and groups a line
creates (written at once: later lines need their ids)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from runner.core.text import excerpt, number, quoted
from runner.db.raw import Raw
from runner.db.tables import MoodleTables
from runner.step.preview import Withheld
from runner.sync.base import Course, LineFailed
from runner.sync.journal import FileJournal
from runner.sync.writes import chunks

CONTEXT_COURSE = 50
#: resolved user keys kept from batch to batch (a file names the same users again and
#: again); past this many, the next batch starts afresh, which bounds the memory
USERS_KEPT = 200_000


class Lookups:
    """Identifiers resolved once per control file, each lookup a set-based SELECT.

    `wait` is called before the connection is used: a batch's writes may be running on
    it in the writer thread.
    """

    def __init__(
        self,
        conn: Connection,
        raw: Raw,
        tables: MoodleTables,
        now: int,
        *,
        course_key: str,
        user_key: str,
        wait: Callable[[], None],
        withheld: Withheld | None = None,
        journal: FileJournal | None = None,
    ) -> None:
        self.conn = conn
        #: a preview: the instances and groups it would have created are kept there
        self.withheld = withheld
        #: where the instances and groups lines create are told (runner.sync.journal)
        self.journal = journal if journal is not None else FileJournal()
        self.raw = raw
        self.t = tables
        self.now = now
        self.course_key = course_key
        self.user_key = user_key
        self.wait = wait
        self.roles: dict[str, int] = {
            r.shortname: r.id
            for r in conn.execute(select(tables.role.c.id, tables.role.c.shortname))
        }
        self.courses: dict[str, Course | str] = {}
        #: course id -> its enrol instances as (sortorder, id, plugin, status)
        self.enrols: dict[int, list[tuple[int, int, str, int]]] = {}
        self.enrol_course: dict[int, int] = {}
        self.groups: dict[int, dict[str, list[int]]] = {}
        self.group_course: dict[int, int] = {}
        self.group_names: dict[int, str] = {}
        self.group_idnumbers: dict[int, dict[str, list[int]]] = {}
        #: (groups | groupings, id) the file made or a groups file declared: recorded as
        #: the feed's with the file's changes (runner.db.feed_groups)
        self.made: set[tuple[str, int]] = set()
        self.users: dict[str, int | str] = {}
        self._manual: dict[str, int] | None = None
        #: what the current line should say beside its outcome (a duplicate another
        #: writer made, which the line went past): the sync's loop takes them
        self.warnings: list[str] = []

    def db(self) -> Connection:
        """The connection, once the writer is done with it."""
        self.wait()
        return self.conn

    def pairs(
        self, rows: Sequence[dict[str, str]], course_column: str, user_column: str
    ) -> set[tuple[int, int, int]]:
        """Resolve the rows' users and courses; the (course id, context id, user id) of
        each row naming both, with the courses' instances and groups loaded."""
        if len(self.users) > USERS_KEPT:
            self.users.clear()
        self.resolve_users(r[user_column] for r in rows)
        self.resolve_courses(r[course_column] for r in rows)
        pairs = set()
        for r in rows:
            user = self.users.get(r[user_column])
            course = self.courses.get(r[course_column])
            if isinstance(user, int) and isinstance(course, Course):
                pairs.add((course.id, course.context_id, user))
        self.load_courses(c for c, _, _ in pairs)
        return pairs

    def _match(self, table: Any, column: str, values: Iterable[str]) -> dict[str, list[int]]:
        """value -> ids of rows whose `column` equals it (ids as ints for column `id`)."""
        assert column in table.c, column  # from the schema: idnumber, username, email, id
        wanted = sorted(set(values))
        if column == "id":
            wanted = [v for v in wanted if number(v) is not None]
        found: dict[str, list[int]] = {}
        # deleted users and the front page course are left out here rather than in the
        # WHERE clause, so that the database looks the keys up by their own index
        skip = "deleted" if table is self.t.user else "category"
        skip_value = 1 if table is self.t.user else 0
        for part in chunks(wanted, self.raw.chunk):
            keys: Sequence[Any] = [int(v) for v in part] if column == "id" else part
            self.wait()
            for row_id, value, flag in self.raw.select_in(
                table, ("id", column, skip), column, keys
            ):
                if flag != skip_value:
                    found.setdefault(str(value), []).append(row_id)
        if self.withheld is not None and table is self.t.user:
            self.withheld.users.match(column, found, set(wanted))
        return found

    def resolve_users(self, values: Iterable[str]) -> None:
        todo = {v for v in values if v and v not in self.users}
        found = self._match(self.t.user, self.user_key, todo)
        for value in todo:
            ids = found.get(value, [])
            if len(ids) == 1:
                self.users[value] = ids[0]
            elif ids:
                self.users[value] = f"{len(ids)} users have {self.user_key} {excerpt(value)}"
            else:
                self.users[value] = f"no such user ({self.user_key} {excerpt(value)})"

    def resolve_courses(self, values: Iterable[str]) -> None:
        todo = {v for v in values if v and v not in self.courses}
        found = self._match(self.t.course, self.course_key, todo)
        ids = sorted({i[0] for i in found.values() if len(i) == 1})
        contexts: dict[int, int] = {}
        ctx = self.t.context.c
        for part in chunks(ids):
            rows = self.db().execute(
                select(ctx.instanceid, ctx.id).where(
                    ctx.contextlevel == CONTEXT_COURSE, ctx.instanceid.in_(part)
                )
            )
            for instance, context in rows:
                contexts[instance] = context
        for value in todo:
            match = found.get(value, [])
            if len(match) > 1:
                self.courses[value] = (
                    f"{len(match)} courses have {self.course_key} {excerpt(value)}"
                )
            elif not match:
                self.courses[value] = f"no such course ({self.course_key} {excerpt(value)})"
            elif match[0] not in contexts:
                self.courses[value] = f"course {value} has no context (run Moodle's cron)"
            else:
                self.courses[value] = Course(match[0], contexts[match[0]], value)

    def user_names(self, ids: Sequence[int]) -> dict[int, str]:
        """These users as a line would name them (their `user_key` value)."""
        u = self.t.user.c
        names: dict[int, str] = {}
        for part in chunks(ids):
            rows = self.db().execute(select(u.id, u[self.user_key]).where(u.id.in_(part)))
            names.update((int(uid), str(name)) for uid, name in rows)
        return names

    def user(self, value: str, column: str) -> int:
        if not value:
            raise LineFailed(f"empty {column}")
        found = self.users[value]
        if isinstance(found, str):
            raise LineFailed(found)
        return found

    def course(self, value: str, column: str) -> Course:
        if not value:
            raise LineFailed(f"empty {column}")
        found = self.courses[value]
        if isinstance(found, str):
            raise LineFailed(found)
        return found

    def role(self, shortname: str) -> int:
        if not shortname:
            raise LineFailed("empty rolename")
        if shortname not in self.roles:
            raise LineFailed(f"no such role {quoted(shortname)}")
        return self.roles[shortname]

    def role_name(self, role_id: int) -> str:
        return next((name for name, i in self.roles.items() if i == role_id), str(role_id))

    def instance(self, course: Course, plugin: str) -> tuple[int, int] | None:
        """(enrol.id, status) of the course's first instance of `plugin`, if any."""
        if course.id not in self.enrols:
            self.load_courses([course.id])
        for _sortorder, eid, name, status in self.enrols[course.id]:
            if name == plugin:
                return eid, status
        return None

    def load_courses(self, course_ids: Iterable[int]) -> None:
        """The enrol instances and groups of these courses (kept for the whole file)."""
        todo = sorted({c for c in course_ids if c not in self.enrols})
        if not todo:
            return
        e, g = self.t.enrol.c, self.t.groups.c
        for cid in todo:
            self.enrols[cid] = []
            self.groups[cid] = {}
            self.group_idnumbers[cid] = {}
        for part in chunks(todo):
            rows = self.db().execute(
                select(e.sortorder, e.id, e.enrol, e.status, e.courseid).where(e.courseid.in_(part))
            )
            for sortorder, eid, plugin, status, cid in rows:
                self.enrols[cid].append((sortorder, eid, plugin, status))
                self.enrol_course[eid] = cid
            groups = self.conn.execute(
                select(g.id, g.name, g.idnumber, g.courseid).where(g.courseid.in_(part))
            )
            for gid, name, idnumber, cid in groups:
                self._index_group(cid, gid, name, idnumber)
        if self.withheld is not None:
            for cid in todo:
                for instance in self.withheld.instances.get(cid, ()):
                    self.enrols[cid].append(instance)
                    self.enrol_course[instance[1]] = cid
                renamed = self.withheld.group_rows
                for gid in [g for ids in self.groups[cid].values() for g in ids if g in renamed]:
                    name, idnumber = renamed[gid]  # renamed by the preview
                    self._unindex_group(cid, gid)
                    self._index_group(cid, gid, name, idnumber)
                for gid, name, idnumber in self.withheld.groups.get(cid, ()):
                    name, idnumber = self.withheld.group_rows.get(gid, (name, idnumber))
                    self._index_group(cid, gid, name, idnumber)
        for cid in todo:
            self.enrols[cid].sort()

    def create_manual_instance(self, course: Course) -> int:
        """Moodle's enrol_manual add_default_instance: the site's enrol_manual settings
        (config_plugins), Moodle's defaults where the site has none."""
        e = self.t.enrol
        sortorder = (
            self.db()
            .execute(
                select(func.coalesce(func.max(e.c.sortorder), -1) + 1).where(
                    e.c.courseid == course.id
                )
            )
            .scalar_one()
        )
        fields = self.manual_defaults()
        if self.withheld is not None:  # a preview: what the insert would have made
            enrol_id = self.withheld.new_id()
            row = (sortorder, enrol_id, "manual", fields["status"])
            self.withheld.created(self.withheld.instances, course.id, row)
        else:
            # unless another writer made the course's manual instance meanwhile
            values = {
                "enrol": "manual",
                "courseid": course.id,
                "sortorder": sortorder,
                "enrolstartdate": 0,
                "enrolenddate": 0,
                "timecreated": self.now,
                "timemodified": self.now,
                **fields,
            }
            enrol_id = self.raw.insert_one(e, values, ("courseid", "enrol"))
        if enrol_id not in self.enrol_course:  # not another writer's, found
            self.journal.enrol_instance_created(course, enrol_id, "manual")
        self.enrols[course.id].append((sortorder, enrol_id, "manual", fields["status"]))
        self.enrols[course.id].sort()
        self.enrol_course[enrol_id] = course.id
        return enrol_id

    def manual_defaults(self) -> dict[str, int]:
        """The fields add_default_instance takes from the site's enrol_manual settings."""
        if self._manual is None:
            cp = self.t.config_plugins
            settings = dict(
                self.db()
                .execute(select(cp.c.name, cp.c.value).where(cp.c.plugin == "enrol_manual"))
                .all()
            )

            def setting(name: str, default: int) -> int:
                value = str(settings.get(name, "")).strip()
                return int(value) if value.lstrip("-").isdigit() else default

            student = self.conn.execute(
                select(self.t.role.c.id)
                .where(self.t.role.c.archetype == "student")
                .order_by(self.t.role.c.sortorder)
                .limit(1)
            ).scalar()
            notify = setting("expirynotify", 0)
            self._manual = {
                "status": setting("status", 0),
                "roleid": setting("roleid", student or 0),
                "enrolperiod": setting("enrolperiod", 0),
                "expirynotify": notify,
                "notifyall": 1 if notify == 2 else 0,
                "expirythreshold": setting("expirythreshold", 86400),
            }
        return self._manual

    def group(self, course: Course, value: str, key: str = "name") -> int | None:
        """The id of the course's group whose `key` (name or idnumber) is `value`."""
        if course.id not in self.groups:
            self.load_courses([course.id])
        index = self.groups if key == "name" else self.group_idnumbers
        ids = index[course.id].get(value, [])
        if len(ids) > 1:  # Moodle's groups_create_group refuses that: another writer's
            self.warnings.append(
                f"warning: {len(ids)} groups have {key} {quoted(value)} in course {course.key}"
                f" (ids {', '.join(map(str, sorted(ids)))}): the line used the first"
            )
        return min(ids) if ids else None

    def _index_group(self, cid: int, gid: int, name: str, idnumber: str | None) -> None:
        self.groups[cid].setdefault(name, []).append(gid)
        if idnumber:
            self.group_idnumbers[cid].setdefault(idnumber, []).append(gid)
        self.group_course[gid] = cid
        self.group_names[gid] = name

    def _unindex_group(self, cid: int, gid: int) -> None:
        for index in (self.groups[cid], self.group_idnumbers[cid]):
            for key in [k for k, ids in index.items() if gid in ids]:
                index[key].remove(gid)
                if not index[key]:
                    del index[key]

    def create_group(
        self, course: Course, name: str, idnumber: str = "", description: str = ""
    ) -> int:
        if self.withheld is not None:  # a preview: what the insert would have made
            gid = self.withheld.new_id()
            self.withheld.created(self.withheld.groups, course.id, (gid, name, idnumber))
        else:
            # unless another writer made a group of that name meanwhile: then that one
            values = {
                "courseid": course.id,
                "idnumber": idnumber,
                "name": name,
                "description": description,
                "descriptionformat": 1,
                "timecreated": self.now,
                "timemodified": self.now,
            }
            self.wait()
            gid = self.raw.insert_one(self.t.groups, values, ("courseid", "name"))
            if gid in self.group_course:
                return gid
        self.journal.group_created(course, "group", gid, name, idnumber)
        self._index_group(course.id, gid, name, idnumber)
        self.made.add(("groups", gid))
        return gid

    def group_idnumber(self, course: Course, gid: int) -> str:
        ids = self.group_idnumbers.get(course.id, {})
        return next((value for value, gids in ids.items() if gid in gids), "")

    def rename_group(self, course: Course, gid: int, name: str, idnumber: str) -> None:
        """The group's name or idnumber changed (the caller writes it)."""
        self._unindex_group(course.id, gid)
        self._index_group(course.id, gid, name, idnumber)
