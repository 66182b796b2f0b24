"""Moodle's table definitions, read from a release's lib/db/install.xml, as test data.

    python -m tests.moodle_install_xml GITDIR COMMIT RELEASE REPOSITORY [--web-root public/]

reads `lib/db/install.xml` and `version.php` of COMMIT in the git directory GITDIR
(`git show`), keeps the tables runner.db.tables defines, and writes
tests/fixtures/moodle-tables/RELEASE.json: for each table its columns (XMLDB type,
length, decimals, NOT NULL, default, sequence) and its indexes, each with the name
Moodle's installer gives it on a fresh site (prefix `mdl_`, left out of the file), and
the PostgreSQL hint Moodle reads (`varchar_pattern_ops`: a second index, `<name>_pattern`).

The names are worked out as Moodle's DDL generator does (lib/ddl/sql_generator.php,
getNameForObject): the first four letters of each word of the table's name, `_`, the
first three letters of each field, the prefix in front, cut to 30 characters with the
suffix (`pk`, `uix`, `ix`), and a counter before the suffix when the name was taken
earlier in the same install (a counter kept per name without its suffix, over every
table of the file, in its order). A table's statements come in this order: its primary
key (named once in the CREATE TABLE, and named again, unused, when the generator goes
over the keys for their indexes), its indexes, then an index for each unique key and
each foreign key. On sites of 4.2, 4.5.6, 5.0 and 5.1.3 installed on PostgreSQL with
Moodle's admin/cli/install.php, every name of these tables came out as worked out here
(tests/moodle/test_moodle_tables.py checks the lab's site).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "moodle-tables"
PREFIX = "mdl_"
NAME_LIMIT = 30


class Namer:
    """The names one install gives its keys and indexes."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.counters: dict[str, int] = {}

    def name(self, table: str, fields: list[str], suffix: str) -> str:
        stem = "".join(word[:4] for word in table.split("_")) + "_"
        stem = PREFIX + stem + "".join(field[:3] for field in fields)
        room = NAME_LIMIT - len(suffix) - 1
        counter = self.counters.get(stem, 0) + 1
        while True:
            number = "" if counter == 1 else str(counter)
            name = stem[: room - len(number)] + number + "_" + suffix
            if name not in self.used:
                break
            counter += 1
        self.used.add(name)
        self.counters[stem] = counter
        return name


def _fields(text: str) -> list[str]:
    return [f.strip() for f in text.split(",")]


def _column(field: ET.Element) -> dict[str, Any]:
    a = field.attrib
    column: dict[str, Any] = {"name": a["NAME"], "type": a["TYPE"]}
    if "LENGTH" in a:
        column["length"] = int(a["LENGTH"])
    if "DECIMALS" in a:
        column["decimals"] = int(a["DECIMALS"])
    column["notnull"] = a.get("NOTNULL") == "true"
    if a.get("SEQUENCE") == "true":
        column["sequence"] = True
    elif "DEFAULT" in a:
        column["default"] = a["DEFAULT"]
    return column


def read_tables(xml: str) -> dict[str, dict[str, Any]]:
    """Every table of an install.xml, in its order, with its physical index names."""
    namer = Namer()
    tables: dict[str, dict[str, Any]] = {}
    for table in ET.fromstring(xml).iter("TABLE"):
        name = table.attrib["NAME"]
        keys = [k.attrib for k in table.findall("KEYS/KEY")]
        primary = next(k for k in keys if k["TYPE"] == "primary")
        pk = namer.name(name, _fields(primary["FIELDS"]), "pk")
        indexes = []
        for index in table.findall("INDEXES/INDEX"):
            a = index.attrib
            unique = a.get("UNIQUE") == "true"
            fields = _fields(a["FIELDS"])
            entry: dict[str, Any] = {
                "name": namer.name(name, fields, "uix" if unique else "ix"),
                "fields": fields,
                "unique": unique,
                "from": f"index {a['NAME']}",
            }
            if a.get("HINTS"):
                entry["hints"] = _fields(a["HINTS"].lower())
            indexes.append(entry)
        for key in keys:
            fields = _fields(key["FIELDS"])
            if key["TYPE"] == "primary":
                namer.name(name, fields, "pk")  # the generator's second, unused name
                continue
            unique = key["TYPE"] in ("unique", "foreign-unique")
            indexes.append(
                {
                    "name": namer.name(name, fields, "uix" if unique else "ix"),
                    "fields": fields,
                    "unique": unique,
                    "from": f"{key['TYPE']} key {key['NAME']}",
                }
            )
        tables[name] = {
            "columns": [_column(f) for f in table.findall("FIELDS/FIELD")],
            "primary": {"name": pk, "fields": _fields(primary["FIELDS"])},
            "indexes": indexes,
        }
    return tables


def _unprefixed(table: dict[str, Any]) -> dict[str, Any]:
    table["primary"]["name"] = table["primary"]["name"].removeprefix(PREFIX)
    for index in table["indexes"]:
        index["name"] = index["name"].removeprefix(PREFIX)
    return table


def _show(gitdir: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", "show", f"{commit}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _setting(php: str, name: str) -> str:
    found = re.search(rf"^\${name}\s*=\s*'?([^';]+)'?;", php, re.MULTILINE)
    if found is None:
        raise SystemExit(f"version.php has no ${name}")
    return found.group(1).strip()


def _dump(data: dict[str, Any]) -> str:
    """JSON with one line per column and per index (a diff between two releases' files
    shows what changed)."""
    text = json.dumps({**data, "tables": {}}, indent=1)[: -len("{}\n}")]
    tables = []
    for name, table in data["tables"].items():
        parts = [
            f'   "{key}": [\n'
            + ",\n".join(f"    {json.dumps(item)}" for item in table[key])
            + "\n   ]"
            for key in ("columns", "indexes")
        ]
        primary = f'   "primary": {json.dumps(table["primary"])}'
        tables.append(f'  "{name}": {{\n{parts[0]},\n{primary},\n{parts[1]}\n  }}')
    return text + "{\n" + ",\n".join(tables) + "\n }\n}\n"


def main(argv: list[str] | None = None) -> None:
    from runner.db.tables import moodle_tables

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gitdir")
    parser.add_argument("commit")
    parser.add_argument("release", help="e.g. 4.2: the file's name")
    parser.add_argument("repository", help="where the tree is, e.g. github:owner/name")
    parser.add_argument("--web-root", default="", help="public/ from Moodle 5.1")
    args = parser.parse_args(argv)
    root = args.web_root
    xml = _show(args.gitdir, args.commit, f"{root}lib/db/install.xml")
    php = _show(args.gitdir, args.commit, f"{root}version.php")
    every = read_tables(xml)
    wanted = [t.name.removeprefix(PREFIX) for t in moodle_tables(PREFIX).all]
    data = {
        "source": {
            "repository": args.repository,
            "commit": args.commit,
            "path": f"{root}lib/db/install.xml",
            "xmldb_version": ET.fromstring(xml).attrib["VERSION"],
            "release": _setting(php, "release"),
            "version": _setting(php, "version"),
        },
        "derived": (
            "the tables postsync defines, as the file defines them; index names as"
            " Moodle's installer gives them with the prefix mdl_ (left out here)"
        ),
        "tables": {name: _unprefixed(every[name]) for name in sorted(wanted)},
    }
    FIXTURES.mkdir(parents=True, exist_ok=True)
    target = FIXTURES / f"{args.release}.json"
    target.write_text(_dump(data))
    print(f"wrote {target}: {len(data['tables'])} tables")


if __name__ == "__main__":
    main()
