"""Moodle's tables of groups and groupings: groups, their members, groupings and the
groups in them (names, columns and index names as Moodle's lib/db/install.xml makes
them)."""

from __future__ import annotations

from sqlalchemy import Index, MetaData, Table

from runner.db.columns import char_col, id_col, int_col, text_col


def add_group_tables(md: MetaData, p: str) -> None:
    Table(
        f"{p}groups",
        md,
        id_col(),
        int_col("courseid", None),
        char_col("idnumber", 100),
        char_col("name", 254),
        text_col("description"),
        int_col("descriptionformat", small=True),
        char_col("enrolmentkey", 50, None, nullable=True),
        int_col("picture"),
        int_col("visibility", small=True),
        int_col("participation", 1, small=True),
        int_col("timecreated"),
        int_col("timemodified"),
        Index(f"{p}grou_idn_ix", "idnumber"),
        Index(f"{p}grou_cou_ix", "courseid"),
    )
    Table(
        f"{p}groups_members",
        md,
        id_col(),
        int_col("groupid"),
        int_col("userid"),
        int_col("timeadded"),
        char_col("component", 100),
        int_col("itemid"),
        Index(f"{p}groumemb_usegro_uix", "userid", "groupid", unique=True),
        Index(f"{p}groumemb_gro_ix", "groupid"),
        Index(f"{p}groumemb_use_ix", "userid"),
    )
    Table(
        f"{p}groupings",
        md,
        id_col(),
        int_col("courseid"),
        char_col("name", 255),
        char_col("idnumber", 100),
        text_col("description"),
        int_col("descriptionformat", small=True),
        text_col("configdata"),
        int_col("timecreated"),
        int_col("timemodified"),
        Index(f"{p}grou_idn2_ix", "idnumber"),
        Index(f"{p}grou_cou2_ix", "courseid"),
    )
    Table(
        f"{p}groupings_groups",
        md,
        id_col(),
        int_col("groupingid"),
        int_col("groupid"),
        int_col("timeadded"),
        Index(f"{p}grougrou_gro_ix", "groupingid"),
        Index(f"{p}grougrou_gro2_ix", "groupid"),
    )
