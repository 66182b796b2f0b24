"""Moodle's tables (names and columns as in lib/db/install.xml) under a configurable prefix.

Only the tables postsync reads or writes. On a real Moodle database they already exist
and postsync never creates or alters them; `postsync db init` creates them for the
embedded default, demos and tests, with Moodle's defaults and indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    CursorResult,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

# int(10) is BIGINT in Moodle; SQLite only auto-increments an INTEGER PRIMARY KEY.
_BIG = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Column[int]:
    return Column("id", _BIG, primary_key=True, autoincrement=True)


def _int(
    name: str, default: int | None = 0, *, nullable: bool = False, small: bool = False
) -> Column[int]:
    kind = SmallInteger() if small else BigInteger()
    server_default = text(str(default)) if default is not None else None
    return Column(name, kind, nullable=nullable, server_default=server_default)


def _char(
    name: str, length: int, default: str | None = "", *, nullable: bool = False
) -> Column[str]:
    server_default = text(f"'{default}'") if default is not None else None
    return Column(name, String(length), nullable=nullable, server_default=server_default)


def _text(name: str) -> Column[str]:
    return Column(name, Text(), nullable=True)


def new_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@dataclass(frozen=True)
class MoodleTables:
    metadata: MetaData
    prefix: str
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
    cache_flags: Table

    @property
    def all(self) -> list[Table]:
        return list(self.metadata.sorted_tables)


def missing_tables(engine: Any, tables: MoodleTables) -> list[str]:
    """The tables postsync uses that the database does not have (reads only)."""
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    return [t.name for t in tables.all if t.name not in present]


def moodle_tables(prefix: str = "mdl_") -> MoodleTables:
    md = MetaData()
    p = prefix

    Table(
        f"{p}user",
        md,
        _id(),
        _char("auth", 20, "manual"),
        _int("confirmed", small=True),
        _int("policyagreed", small=True),
        _int("deleted", small=True),
        _int("suspended", small=True),
        _int("mnethostid"),
        _char("username", 100),
        _char("password", 255),
        _char("idnumber", 255),
        _char("firstname", 100),
        _char("lastname", 100),
        _char("email", 100),
        _int("emailstop", small=True),
        _char("phone1", 20),
        _char("phone2", 20),
        _char("institution", 255),
        _char("department", 255),
        _char("address", 255),
        _char("city", 120),
        _char("country", 2),
        _char("lang", 30, "en"),
        _char("calendartype", 30, "gregorian"),
        _char("theme", 50),
        _char("timezone", 100, "99"),
        _int("firstaccess"),
        _int("lastaccess"),
        _int("lastlogin"),
        _int("currentlogin"),
        _char("lastip", 45),
        _char("secret", 15),
        _int("picture"),
        _text("description"),
        _int("descriptionformat", 1, small=True),
        _int("mailformat", 1, small=True),
        _int("maildigest", small=True),
        _int("maildisplay", 2, small=True),
        _int("autosubscribe", 1, small=True),
        _int("trackforums", small=True),
        _int("timecreated"),
        _int("timemodified"),
        _int("trustbitmask"),
        _char("imagealt", 255, None, nullable=True),
        _char("lastnamephonetic", 255, None, nullable=True),
        _char("firstnamephonetic", 255, None, nullable=True),
        _char("middlename", 255, None, nullable=True),
        _char("alternatename", 255, None, nullable=True),
        _char("moodlenetprofile", 255, None, nullable=True),
        Index(f"{p}user_mneuse_uix", "mnethostid", "username", unique=True),
        Index(f"{p}user_idn_ix", "idnumber"),
        Index(f"{p}user_ema_ix", "email"),
        Index(f"{p}user_del_ix", "deleted"),
    )
    Table(
        f"{p}course",
        md,
        _id(),
        _int("category"),
        _int("sortorder"),
        _char("fullname", 1333),
        _char("shortname", 255),
        _char("idnumber", 100),
        _text("summary"),
        _int("summaryformat", small=True),
        _char("format", 21, "topics"),
        _int("showgrades", 1, small=True),
        _int("newsitems", 1),
        _int("startdate"),
        _int("enddate"),
        _int("relativedatesmode", small=True),
        _int("marker"),
        _int("maxbytes"),
        _int("legacyfiles", small=True),
        _int("showreports", small=True),
        _int("visible", 1, small=True),
        _int("visibleold", 1, small=True),
        _int("downloadcontent", None, nullable=True, small=True),
        _int("groupmode", small=True),
        _int("groupmodeforce", small=True),
        _int("defaultgroupingid"),
        _char("lang", 30),
        _char("calendartype", 30),
        _char("theme", 50),
        _int("timecreated"),
        _int("timemodified"),
        _int("requested", small=True),
        _int("enablecompletion", small=True),
        _int("completionnotify", small=True),
        _int("cacherev"),
        _int("originalcourseid", None, nullable=True),
        _int("showactivitydates", small=True),
        _int("showcompletionconditions", None, nullable=True, small=True),
        _char("pdfexportfont", 50, None, nullable=True),
        Index(f"{p}cour_cat_ix", "category"),
        Index(f"{p}cour_idn_ix", "idnumber"),
        Index(f"{p}cour_sho_ix", "shortname"),
    )
    Table(
        f"{p}course_categories",
        md,
        _id(),
        _char("name", 255),
        _char("idnumber", 100, None, nullable=True),
        _text("description"),
        _int("descriptionformat", small=True),
        _int("parent"),
        _int("sortorder"),
        _int("coursecount"),
        _int("visible", 1, small=True),
        _int("visibleold", 1, small=True),
        _int("timemodified"),
        _int("depth"),
        _char("path", 255),
        _char("theme", 50, None, nullable=True),
    )
    Table(
        f"{p}context",
        md,
        _id(),
        _int("contextlevel"),
        _int("instanceid"),
        _char("path", 255, None, nullable=True),
        _int("depth", small=True),
        _int("locked", small=True),
        Index(f"{p}cont_conins_uix", "contextlevel", "instanceid", unique=True),
        Index(f"{p}cont_ins_ix", "instanceid"),
        Index(f"{p}cont_pat_ix", "path"),
    )
    Table(
        f"{p}role",
        md,
        _id(),
        _char("name", 255),
        _char("shortname", 100),
        Column("description", Text(), nullable=False),
        _int("sortorder"),
        _char("archetype", 30),
        Index(f"{p}role_sor_uix", "sortorder", unique=True),
        Index(f"{p}role_sho_uix", "shortname", unique=True),
    )
    Table(
        f"{p}enrol",
        md,
        _id(),
        _char("enrol", 20),
        _int("status"),
        _int("courseid", None),
        _int("sortorder"),
        _char("name", 255, None, nullable=True),
        _int("enrolperiod", nullable=True),
        _int("enrolstartdate", nullable=True),
        _int("enrolenddate", nullable=True),
        _int("expirynotify", nullable=True, small=True),
        _int("expirythreshold", nullable=True),
        _int("notifyall", nullable=True, small=True),
        _char("password", 50, None, nullable=True),
        _char("cost", 20, None, nullable=True),
        _char("currency", 3, None, nullable=True),
        _int("roleid", nullable=True),
        *[_int(f"customint{i}", None, nullable=True) for i in range(1, 9)],
        _char("customchar1", 255, None, nullable=True),
        _char("customchar2", 255, None, nullable=True),
        _char("customchar3", 1333, None, nullable=True),
        Column("customdec1", Numeric(12, 7), nullable=True),
        Column("customdec2", Numeric(12, 7), nullable=True),
        *[_text(f"customtext{i}") for i in range(1, 5)],
        _int("timecreated"),
        _int("timemodified"),
        Index(f"{p}enro_enr_ix", "enrol"),
        Index(f"{p}enro_cou_ix", "courseid"),
    )
    Table(
        f"{p}user_enrolments",
        md,
        _id(),
        _int("status"),
        _int("enrolid", None),
        _int("userid", None),
        _int("timestart"),
        _int("timeend", 2147483647),
        _int("modifierid"),
        _int("timecreated"),
        _int("timemodified"),
        Index(f"{p}userenro_enruse_uix", "enrolid", "userid", unique=True),
        Index(f"{p}userenro_use_ix", "userid"),
    )
    Table(
        f"{p}role_assignments",
        md,
        _id(),
        _int("roleid"),
        _int("contextid"),
        _int("userid"),
        _int("timemodified"),
        _int("modifierid"),
        _char("component", 100),
        _int("itemid"),
        _int("sortorder"),
        Index(f"{p}roleassi_rolcon_ix", "roleid", "contextid"),
        Index(f"{p}roleassi_useconrol_ix", "userid", "contextid", "roleid"),
        Index(f"{p}roleassi_comiteuse_ix", "component", "itemid", "userid"),
    )
    Table(
        f"{p}groups",
        md,
        _id(),
        _int("courseid", None),
        _char("idnumber", 100),
        _char("name", 254),
        _text("description"),
        _int("descriptionformat", small=True),
        _char("enrolmentkey", 50, None, nullable=True),
        _int("picture"),
        _int("visibility", small=True),
        _int("participation", 1, small=True),
        _int("timecreated"),
        _int("timemodified"),
        Index(f"{p}grou_idn_ix", "idnumber"),
        Index(f"{p}grou_cou_ix", "courseid"),
    )
    Table(
        f"{p}groups_members",
        md,
        _id(),
        _int("groupid"),
        _int("userid"),
        _int("timeadded"),
        _char("component", 100),
        _int("itemid"),
        Index(f"{p}groumemb_usegro_uix", "userid", "groupid", unique=True),
        Index(f"{p}groumemb_gro_ix", "groupid"),
    )
    Table(
        f"{p}groupings",
        md,
        _id(),
        _int("courseid"),
        _char("name", 255),
        _char("idnumber", 100),
        _text("description"),
        _int("descriptionformat", small=True),
        _text("configdata"),
        _int("timecreated"),
        _int("timemodified"),
        Index(f"{p}grou_idn2_ix", "idnumber"),
        Index(f"{p}grou_cou2_ix", "courseid"),
    )
    Table(
        f"{p}groupings_groups",
        md,
        _id(),
        _int("groupingid"),
        _int("groupid"),
        _int("timeadded"),
        Index(f"{p}grougrou_gru_ix", "groupingid"),
        Index(f"{p}grougrou_gro_ix", "groupid"),
    )
    Table(
        f"{p}user_lastaccess",
        md,
        _id(),
        _int("userid"),
        _int("courseid"),
        _int("timeaccess"),
        Index(f"{p}userlast_usecou_uix", "userid", "courseid", unique=True),
        Index(f"{p}userlast_use_ix", "userid"),
        Index(f"{p}userlast_cou_ix", "courseid"),
    )
    Table(
        f"{p}config",
        md,
        _id(),
        _char("name", 255, None),
        Column("value", Text(), nullable=False),
        Index(f"{p}conf_nam_uix", "name", unique=True),
    )
    Table(
        f"{p}cache_flags",
        md,
        _id(),
        _char("flagtype", 255, None),
        _char("name", 255, None),
        _int("timemodified"),
        Column("value", Text(), nullable=False),
        _int("expiry", None),
        Index(f"{p}cachflag_fla_ix", "flagtype"),
        Index(f"{p}cachflag_nam_ix", "name"),
    )
    names = [f.name for f in fields(MoodleTables)][2:]  # after metadata and prefix
    return MoodleTables(md, prefix, **{name: md.tables[p + name] for name in names})
