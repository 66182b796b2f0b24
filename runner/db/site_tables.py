"""Moodle's tables of site state that postsync touches beside enrolments and groups: the
course access times, the site's settings, the cache flags, the calendar and the course
modules (names, columns and index names as Moodle's lib/db/install.xml makes them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, MetaData, Table, Text

from runner.db.columns import char_col, id_col, int_col, text_col
from runner.db.releases import MoodleRelease


def add_site_tables(md: MetaData, p: str, release: MoodleRelease) -> None:
    Table(
        f"{p}user_lastaccess",
        md,
        id_col(),
        int_col("userid"),
        int_col("courseid"),
        int_col("timeaccess"),
        Index(f"{p}userlast_usecou_uix", "userid", "courseid", unique=True),
        Index(f"{p}userlast_use_ix", "userid"),
        Index(f"{p}userlast_cou_ix", "courseid"),
    )
    Table(
        f"{p}config",
        md,
        id_col(),
        char_col("name", 255, None),
        Column("value", Text(), nullable=False),
        Index(f"{p}conf_nam_uix", "name", unique=True),
    )
    Table(
        f"{p}config_plugins",
        md,
        id_col(),
        char_col("plugin", 100, "core"),
        char_col("name", 100, None),
        Column("value", Text(), nullable=False),
        Index(f"{p}confplug_plunam_uix", "plugin", "name", unique=True),
    )
    Table(
        f"{p}cache_flags",
        md,
        id_col(),
        char_col("flagtype", 255, None),
        char_col("name", 255, None),
        int_col("timemodified"),
        Column("value", Text(), nullable=False),
        int_col("expiry", None),
        Index(f"{p}cachflag_fla_ix", "flagtype"),
        Index(f"{p}cachflag_nam_ix", "name"),
    )
    Table(
        f"{p}event",
        md,
        id_col(),
        Column("name", Text(), nullable=False),
        Column("description", Text(), nullable=False),
        int_col("format", small=True),
        int_col("categoryid"),
        int_col("courseid"),
        int_col("groupid"),
        int_col("userid"),
        int_col("repeatid"),
        char_col("component", 100, None, nullable=True),
        char_col("modulename", 20, None),
        int_col("instance"),
        int_col("type", small=True),
        char_col("eventtype", 20, None),
        int_col("timestart"),
        int_col("timeduration"),
        int_col("timesort", None, nullable=True),
        int_col("visible", 1, small=True),
        char_col("uuid", 255, None),
        int_col("sequence", 1),
        int_col("timemodified"),
        int_col("subscriptionid", None, nullable=True),
        int_col("priority", None, nullable=True),
        text_col("location"),
        Index(f"{p}even_cat_ix", "categoryid"),
        Index(f"{p}even_sub_ix", "subscriptionid"),
        Index(f"{p}even_cou_ix", "courseid"),
        Index(f"{p}even_use_ix", "userid"),
        Index(f"{p}even_tim_ix", "timestart"),
        Index(f"{p}even_tim2_ix", "timeduration"),
        Index(f"{p}even_uui_ix", "uuid"),
        Index(f"{p}even_typtim_ix", "type", "timesort"),
        Index(
            f"{p}even_grocoucatvisuse_ix", "groupid", "courseid", "categoryid", "visible", "userid"
        ),
        Index(f"{p}even_eve_ix", "eventtype"),
        Index(f"{p}even_comeveins_ix", "component", "eventtype", "instance"),
        Index(f"{p}even_modinseve_ix", "modulename", "instance", "eventtype"),
    )
    ai_columns: list[Column[Any]] = (
        [int_col("enableaitools", None, nullable=True, small=True), text_col("enabledaiactions")]
        if release.since("5.1")
        else []
    )
    Table(
        f"{p}course_modules",
        md,
        id_col(),
        int_col("course"),
        int_col("module"),
        int_col("instance"),
        int_col("section"),
        char_col("idnumber", 100, None, nullable=True),
        int_col("added"),
        int_col("score", small=True),
        int_col("indent", medium=True),
        int_col("visible", 1, small=True),
        int_col("visibleoncoursepage", 1, small=True),
        int_col("visibleold", 1, small=True),
        int_col("groupmode", small=True),
        int_col("groupingid"),
        int_col("completion", small=True),
        int_col("completiongradeitemnumber", None, nullable=True),
        int_col("completionview", small=True),
        int_col("completionexpected"),
        int_col("completionpassgrade", small=True),
        int_col("showdescription", small=True),
        text_col("availability"),
        int_col("deletioninprogress", small=True),
        int_col("downloadcontent", 1, nullable=True, small=True),
        char_col("lang", 30, None, nullable=True),
        *ai_columns,
        Index(f"{p}courmodu_gro_ix", "groupingid"),
        Index(f"{p}courmodu_vis_ix", "visible"),
        Index(f"{p}courmodu_cou_ix", "course"),
        Index(f"{p}courmodu_mod_ix", "module"),
        Index(f"{p}courmodu_ins_ix", "instance"),
        Index(f"{p}courmodu_idncou_ix", "idnumber", "course"),
    )
