"""Moodle's tables of people beside `user`: preferences, custom profile fields and
their data, cohorts and their members, and the sessions table (names, columns and
index names as Moodle's lib/db/install.xml makes them)."""

from __future__ import annotations

from sqlalchemy import Column, Index, MetaData, Table, Text

from runner.db.columns import char_col, id_col, int_col, text_col
from runner.db.releases import MoodleRelease


def add_people_tables(md: MetaData, p: str, release: MoodleRelease) -> None:
    Table(
        f"{p}user_preferences",
        md,
        id_col(),
        int_col("userid"),
        char_col("name", 255),
        # text from 5.0: NOT NULL, and without a default
        Column("value", Text(), nullable=False)
        if release.since("5.0")
        else char_col("value", 1333),
        Index(f"{p}userpref_usenam_uix", "userid", "name", unique=True),
        Index(f"{p}userpref_nam_ix", "name"),
    )
    Table(
        f"{p}user_info_field",
        md,
        id_col(),
        char_col("shortname", 255, "shortname"),
        Column("name", Text(), nullable=False),
        char_col("datatype", 255),
        text_col("description"),
        int_col("descriptionformat", small=True),
        int_col("categoryid"),
        int_col("sortorder"),
        int_col("required", small=True),
        int_col("locked", small=True),
        int_col("visible", small=True),
        int_col("forceunique", small=True),
        int_col("signup", small=True),
        text_col("defaultdata"),
        int_col("defaultdataformat", small=True),
        *[text_col(f"param{i}") for i in range(1, 6)],
    )
    Table(
        f"{p}user_info_data",
        md,
        id_col(),
        int_col("userid"),
        int_col("fieldid"),
        Column("data", Text(), nullable=False),
        int_col("dataformat", small=True),
        Index(f"{p}userinfodata_usefie_uix", "userid", "fieldid", unique=True),
    )
    Table(
        f"{p}cohort",
        md,
        id_col(),
        int_col("contextid", None),
        char_col("name", 254),
        char_col("idnumber", 100, None, nullable=True),
        text_col("description"),
        int_col("descriptionformat", None, small=True),
        int_col("visible", 1, small=True),
        char_col("component", 100),
        int_col("timecreated", None),
        int_col("timemodified", None),
        char_col("theme", 50, None, nullable=True),
        Index(f"{p}coho_con_ix", "contextid"),
    )
    Table(
        f"{p}cohort_members",
        md,
        id_col(),
        int_col("cohortid"),
        int_col("userid"),
        int_col("timeadded"),
        Index(f"{p}cohomemb_cohuse_uix", "cohortid", "userid", unique=True),
        Index(f"{p}cohomemb_coh_ix", "cohortid"),
        Index(f"{p}cohomemb_use_ix", "userid"),
    )
    Table(
        f"{p}sessions",
        md,
        id_col(),
        int_col("state"),
        char_col("sid", 128),
        int_col("userid", None),
        text_col("sessdata"),
        int_col("timecreated", None),
        int_col("timemodified", None),
        char_col("firstip", 45, None, nullable=True),
        char_col("lastip", 45, None, nullable=True),
        Index(f"{p}sess_sta_ix", "state"),
        Index(f"{p}sess_sid_uix", "sid", unique=True),
        Index(f"{p}sess_tim_ix", "timecreated"),
        Index(f"{p}sess_tim2_ix", "timemodified"),
        Index(f"{p}sess_use_ix", "userid"),
    )
