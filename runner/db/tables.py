"""Moodle's tables (names and columns as in lib/db/install.xml) under a configurable prefix.

Only the tables postsync reads or writes, as one of the releases of runner.db.releases
defines them (they differ in a few columns: see moodle_tables). On a real Moodle
database they already exist and postsync never creates or alters them; `postsync db
init` creates them for the embedded default, demos and tests, as Moodle's installer
does: its defaults, its indexes and their names.

Statements are built on the newest release's tables, whatever the site runs: no
statement postsync issues names a column that only some releases have, nor depends on
a length or type that differs between them (tests/sync/test_moodle_releases.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Column, CursorResult, Index, MetaData, Numeric, Table, Text

from runner.db.columns import char_col, id_col, int_col, text_col
from runner.db.group_tables import add_group_tables
from runner.db.people_tables import add_people_tables
from runner.db.releases import NEWEST, RELEASES, MoodleRelease
from runner.db.site_tables import add_site_tables


def new_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@dataclass(frozen=True)
class MoodleTables:
    metadata: MetaData
    prefix: str
    release: MoodleRelease
    user: Table
    course: Table
    course_categories: Table
    context: Table
    role: Table
    enrol: Table
    user_enrolments: Table
    role_assignments: Table
    groups: Table
    groups_members: Table
    groupings: Table
    groupings_groups: Table
    user_lastaccess: Table
    config: Table
    config_plugins: Table
    cache_flags: Table
    event: Table
    course_modules: Table
    user_preferences: Table
    user_info_field: Table
    user_info_data: Table
    cohort: Table
    cohort_members: Table
    sessions: Table

    @property
    def all(self) -> list[Table]:
        return list(self.metadata.sorted_tables)


def missing_tables(engine: Any, tables: MoodleTables) -> list[str]:
    """The tables postsync uses that the database does not have (reads only)."""
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    return [t.name for t in tables.all if t.name not in present]


def moodle_tables(prefix: str = "mdl_", moodle: str = NEWEST) -> MoodleTables:
    """The tables as Moodle `moodle` (a name of RELEASES) defines them. From 4.2: 5.0
    widens course.fullname to 1333 characters and makes user_preferences.value text;
    5.1 adds course.enableaitools, course_modules.enableaitools and enabledaiactions,
    and gives course.showactivitydates the default 1."""
    md = MetaData()
    p = prefix
    release = RELEASES[moodle]

    Table(
        f"{p}user",
        md,
        id_col(),
        char_col("auth", 20, "manual"),
        int_col("confirmed", small=True),
        int_col("policyagreed", small=True),
        int_col("deleted", small=True),
        int_col("suspended", small=True),
        int_col("mnethostid"),
        char_col("username", 100),
        char_col("password", 255),
        char_col("idnumber", 255),
        char_col("firstname", 100),
        char_col("lastname", 100),
        char_col("email", 100),
        int_col("emailstop", small=True),
        char_col("phone1", 20),
        char_col("phone2", 20),
        char_col("institution", 255),
        char_col("department", 255),
        char_col("address", 255),
        char_col("city", 120),
        char_col("country", 2),
        char_col("lang", 30, "en"),
        char_col("calendartype", 30, "gregorian"),
        char_col("theme", 50),
        char_col("timezone", 100, "99"),
        int_col("firstaccess"),
        int_col("lastaccess"),
        int_col("lastlogin"),
        int_col("currentlogin"),
        char_col("lastip", 45),
        char_col("secret", 15),
        int_col("picture"),
        text_col("description"),
        int_col("descriptionformat", 1, small=True),
        int_col("mailformat", 1, small=True),
        int_col("maildigest", small=True),
        int_col("maildisplay", 2, small=True),
        int_col("autosubscribe", 1, small=True),
        int_col("trackforums", small=True),
        int_col("timecreated"),
        int_col("timemodified"),
        int_col("trustbitmask"),
        char_col("imagealt", 255, None, nullable=True),
        char_col("lastnamephonetic", 255, None, nullable=True),
        char_col("firstnamephonetic", 255, None, nullable=True),
        char_col("middlename", 255, None, nullable=True),
        char_col("alternatename", 255, None, nullable=True),
        char_col("moodlenetprofile", 255, None, nullable=True),
        Index(f"{p}user_mneuse_uix", "mnethostid", "username", unique=True),
        Index(f"{p}user_del_ix", "deleted"),
        Index(f"{p}user_con_ix", "confirmed"),
        Index(f"{p}user_fir_ix", "firstname"),
        Index(f"{p}user_las_ix", "lastname"),
        Index(f"{p}user_cit_ix", "city"),
        Index(f"{p}user_cou_ix", "country"),
        Index(f"{p}user_las2_ix", "lastaccess"),
        Index(f"{p}user_ema_ix", "email"),
        Index(f"{p}user_aut_ix", "auth"),
        Index(f"{p}user_idn_ix", "idnumber"),
        Index(f"{p}user_fir2_ix", "firstnamephonetic"),
        Index(f"{p}user_las3_ix", "lastnamephonetic"),
        Index(f"{p}user_mid_ix", "middlename"),
        Index(f"{p}user_alt_ix", "alternatename"),
    )
    Table(
        f"{p}course",
        md,
        id_col(),
        int_col("category"),
        int_col("sortorder"),
        char_col("fullname", 1333 if release.since("5.0") else 254),
        char_col("shortname", 255),
        char_col("idnumber", 100),
        text_col("summary"),
        int_col("summaryformat", small=True),
        char_col("format", 21, "topics"),
        int_col("showgrades", 1, small=True),
        int_col("newsitems", 1, medium=True),
        int_col("startdate"),
        int_col("enddate"),
        int_col("relativedatesmode", small=True),
        int_col("marker"),
        int_col("maxbytes"),
        int_col("legacyfiles", small=True),
        int_col("showreports", small=True),
        int_col("visible", 1, small=True),
        int_col("visibleold", 1, small=True),
        int_col("downloadcontent", None, nullable=True, small=True),
        int_col("groupmode", small=True),
        int_col("groupmodeforce", small=True),
        int_col("defaultgroupingid"),
        char_col("lang", 30),
        char_col("calendartype", 30),
        char_col("theme", 50),
        int_col("timecreated"),
        int_col("timemodified"),
        int_col("requested", small=True),
        int_col("enablecompletion", small=True),
        int_col("completionnotify", small=True),
        int_col("cacherev"),
        int_col("originalcourseid", None, nullable=True),
        int_col("showactivitydates", 1 if release.since("5.1") else 0, small=True),
        int_col("showcompletionconditions", None, nullable=True, small=True),
        char_col("pdfexportfont", 50, None, nullable=True),
        *(
            [int_col("enableaitools", None, nullable=True, small=True)]
            if release.since("5.1")
            else []
        ),
        Index(f"{p}cour_cat_ix", "category"),
        Index(f"{p}cour_ori_ix", "originalcourseid"),
        Index(f"{p}cour_sor_ix", "sortorder"),
        Index(f"{p}cour_idn_ix", "idnumber"),
        Index(f"{p}cour_sho_ix", "shortname"),
    )
    Table(
        f"{p}course_categories",
        md,
        id_col(),
        char_col("name", 255),
        char_col("idnumber", 100, None, nullable=True),
        text_col("description"),
        int_col("descriptionformat", small=True),
        int_col("parent"),
        int_col("sortorder"),
        int_col("coursecount"),
        int_col("visible", 1, small=True),
        int_col("visibleold", 1, small=True),
        int_col("timemodified"),
        int_col("depth"),
        char_col("path", 255),
        char_col("theme", 50, None, nullable=True),
        Index(f"{p}courcate_par_ix", "parent"),
    )
    Table(
        f"{p}context",
        md,
        id_col(),
        int_col("contextlevel"),
        int_col("instanceid"),
        char_col("path", 255, None, nullable=True),
        int_col("depth", small=True),
        int_col("locked", small=True),
        Index(f"{p}cont_conins_uix", "contextlevel", "instanceid", unique=True),
        Index(f"{p}cont_ins_ix", "instanceid"),
        Index(f"{p}cont_pat_ix", "path"),
        # and on PostgreSQL its pattern twin: runner.db.init.create_tables
    )
    Table(
        f"{p}role",
        md,
        id_col(),
        char_col("name", 255),
        char_col("shortname", 100),
        Column("description", Text(), nullable=False),
        int_col("sortorder"),
        char_col("archetype", 30),
        Index(f"{p}role_sor_uix", "sortorder", unique=True),
        Index(f"{p}role_sho_uix", "shortname", unique=True),
    )
    Table(
        f"{p}enrol",
        md,
        id_col(),
        char_col("enrol", 20),
        int_col("status"),
        int_col("courseid", None),
        int_col("sortorder"),
        char_col("name", 255, None, nullable=True),
        int_col("enrolperiod", nullable=True),
        int_col("enrolstartdate", nullable=True),
        int_col("enrolenddate", nullable=True),
        int_col("expirynotify", nullable=True, small=True),
        int_col("expirythreshold", nullable=True),
        int_col("notifyall", nullable=True, small=True),
        char_col("password", 50, None, nullable=True),
        char_col("cost", 20, None, nullable=True),
        char_col("currency", 3, None, nullable=True),
        int_col("roleid", nullable=True),
        *[int_col(f"customint{i}", None, nullable=True) for i in range(1, 9)],
        char_col("customchar1", 255, None, nullable=True),
        char_col("customchar2", 255, None, nullable=True),
        char_col("customchar3", 1333, None, nullable=True),
        Column("customdec1", Numeric(12, 7), nullable=True),
        Column("customdec2", Numeric(12, 7), nullable=True),
        *[text_col(f"customtext{i}") for i in range(1, 5)],
        int_col("timecreated"),
        int_col("timemodified"),
        Index(f"{p}enro_enr_ix", "enrol"),
        Index(f"{p}enro_cou_ix", "courseid"),
        Index(f"{p}enro_rol_ix", "roleid"),
    )
    Table(
        f"{p}user_enrolments",
        md,
        id_col(),
        int_col("status"),
        int_col("enrolid", None),
        int_col("userid", None),
        int_col("timestart"),
        int_col("timeend", 2147483647),
        int_col("modifierid"),
        int_col("timecreated"),
        int_col("timemodified"),
        Index(f"{p}userenro_enruse_uix", "enrolid", "userid", unique=True),
        Index(f"{p}userenro_use_ix", "userid"),
        Index(f"{p}userenro_enr_ix", "enrolid"),
        Index(f"{p}userenro_mod_ix", "modifierid"),
    )
    Table(
        f"{p}role_assignments",
        md,
        id_col(),
        int_col("roleid"),
        int_col("contextid"),
        int_col("userid"),
        int_col("timemodified"),
        int_col("modifierid"),
        char_col("component", 100),
        int_col("itemid"),
        int_col("sortorder"),
        Index(f"{p}roleassi_rolcon_ix", "roleid", "contextid"),
        Index(f"{p}roleassi_useconrol_ix", "userid", "contextid", "roleid"),
        Index(f"{p}roleassi_comiteuse_ix", "component", "itemid", "userid"),
        Index(f"{p}roleassi_rol_ix", "roleid"),
        Index(f"{p}roleassi_con_ix", "contextid"),
        Index(f"{p}roleassi_use_ix", "userid"),
        Index(f"{p}roleassi_sor_ix", "sortorder"),
    )
    add_group_tables(md, p)
    add_site_tables(md, p, release)
    add_people_tables(md, p, release)
    for table in md.tables.values():
        table.primary_key.name = _primary_key_name(p, table.name.removeprefix(p))
    names = [f.name for f in fields(MoodleTables)][3:]  # after metadata, prefix, release
    return MoodleTables(md, prefix, release, **{name: md.tables[p + name] for name in names})


def _primary_key_name(p: str, table: str) -> str:
    """The name Moodle's installer gives a primary key: four letters of each word of the
    table's name, `_id_pk`; groupings' is `grou_id3_pk`, groups' having taken the
    name (and, unused, `grou_id2_pk`) before it."""
    stem = "".join(word[:4] for word in table.split("_"))
    return f"{p}{stem}_id{'3' if table == 'groupings' else ''}_pk"
