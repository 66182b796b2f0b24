"""`postsync undo RECORD [--check] [--into DIR]`: control files reversing a saved run,
from its change journal (runner.undo), printed, and written unless --check."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from runner.core.errors import Exit
from runner.core.text import plural, printable

#: lines of each file, and notes, shown (all are in the files)
SHOWN = 20


def _database(playbook: Any, url: Any) -> dict[str, Any]:
    """The written playbook's database, as the run's playbook gives it: a template (an
    environment variable) and the vars it may use as written, else the URL with a
    SQLite file's path made absolute."""
    raw = playbook.database
    found: dict[str, Any] = {"prefix": playbook.prefix}
    if raw is None:
        return found
    if "{{" in raw or "{%" in raw:
        if playbook.vars:
            found["vars"] = dict(playbook.vars)
        found["database"] = raw
    else:
        from runner.db.connect import sqlalchemy_url

        found["database"] = sqlalchemy_url(url).render_as_string(hide_password=False)
    return found


def _options(playbook: Any) -> dict[str, dict[str, Any]]:
    """The options of the run's sync steps the written steps keep (who writes, whose
    memberships, whether administrators may be changed)."""
    out: dict[str, dict[str, Any]] = {}
    for command in ("enrolments", "group_members"):
        components = {
            s.params.get("membership_component", "")
            for s in playbook.sync
            if s.kind in ("enrolments", "group_members")
        }
        if len(components) == 1:
            out.setdefault(command, {})["membership_component"] = components.pop()
        modifiers = {s.params.get("modifierid", 0) for s in playbook.sync if s.kind == "enrolments"}
        if len(modifiers) == 1:
            out.setdefault(command, {})["modifierid"] = modifiers.pop()
    if any(s.params.get("allow_admin_updates") for s in playbook.sync if s.kind == "users"):
        out["users"] = {"allow_admin_updates": True}
    return out


def cmd_undo(args: argparse.Namespace) -> int:
    from runner.engine.post import saved_run
    from runner.engine.results import RunOptions
    from runner.undo.plan import make_plan
    from runner.undo.render import render
    from runner.undo.site import read_site
    from runner.undo.source import changes, part_paths
    from runner.undo.write import NOTES, PLAYBOOK, notes_text, playbook_text, undo_files, write_all

    record, playbook, run, _files = saved_run(
        args.record,
        RunOptions(check=True),
        args.playbook,
        previewed="this record is from a --check run: nothing was changed, nothing to undo;"
        " undo the record of a real run",
        unfinished="the run that saved this record did not finish its sync steps (it was"
        " killed, interrupted, or a failed step stopped it): its journal may end before"
        " what it committed. Run the playbook again first (it recovers the files that run"
        " committed), then undo this record",
        same_run=False,
    )
    run_id = str(record.data["run_id"])
    plan = make_plan(changes(part_paths(record)))
    try:
        from runner.undo.lines import wanted

        engine, tables = run.services.database()
        site = read_site(engine, tables, wanted(plan))
    finally:
        run.services.close()
    written = render(plan, site)
    files = undo_files(written)
    notes = [*plan.notes, *written.notes]
    where = args.into or run.facts.area / ".postsync" / "undo" / run_id
    where = Path(where).absolute()
    lines = sum(len(f.lines) for f in files)
    print(
        f"UNDO     run {run_id} ({printable(playbook.name)}): {plural(plan.count, 'change')}"
        f" in its journal; {plural(lines, 'line')} in {plural(len(files), 'control file')},"
        f" {plural(len(notes), 'note')}"
    )
    for f in files:
        kinds = Counter(values[0] for values, _o in f.lines)
        counted = ", ".join(f"{kind} {n:,}" for kind, n in sorted(kinds.items()))
        print(f"    write {f.name}  ({f.command}, {plural(len(f.lines), 'line')}: {counted})")
        for values, origin in f.lines[:SHOWN]:
            print(f"        {printable(';'.join(values))}    <- {printable(origin)}")
        if len(f.lines) > SHOWN:
            print(f"        ... and {len(f.lines) - SHOWN:,} more")
    if files:
        print(f"    write {PLAYBOOK}  (the playbook applying them, in this order)")
    if notes:
        print(f"    write {NOTES}  ({plural(len(notes), 'note')}: what the undo does not reverse)")
        print("NOTES    (what is not reversed, by the line that made the change)")
        for origin, text in notes[:SHOWN]:
            print(f"    {printable(origin)}: {printable(text)}")
        if len(notes) > SHOWN:
            print(f"    ... and {len(notes) - SHOWN:,} more (all in {NOTES})")
    if not files and not notes:
        print("nothing to undo: the run changed no row its journal lists")
        return int(Exit.OK)
    code = int(Exit.LINES_FAILED if notes else Exit.OK)
    if args.check:
        print(f"(preview: nothing written; without --check, into {printable(str(where))})")
        return code
    texts: dict[str, tuple[str, int]] = {f.name: (f.text(), 0o640) for f in files}
    if files:
        database = _database(playbook, run.facts.database_url)
        text = playbook_text(run_id, playbook.name, database, files, _options(playbook))
        texts[PLAYBOOK] = (text, 0o600)  # it may hold the database's password
    if notes:
        texts[NOTES] = (notes_text(run_id, notes), 0o640)
    write_all(where, texts)
    print(f"WROTE    {printable(str(where))}")
    if files:
        target = printable(str(where / PLAYBOOK))
        print(f"Preview: postsync run {target} --check")
        print(f"Apply:   postsync run {target}")
    return code
