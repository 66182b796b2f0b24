"""users in `mode: snapshot`: the file is the whole truth for the users of one
authentication plugin (`scope: {auth: NAME}`): a user of that auth (not deleted, of
this site) whose username no line names is suspended (`missing: suspend`, as a line
with suspended 1 would: their sessions end) or kept. The guest and the site's
administrators are never suspended."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import select

from runner.core.text import excerpt
from runner.sync.base import LineResult, SyncOptions
from runner.sync.snapshot import Listed, missed
from runner.sync.users.state import UserState
from runner.sync.writes import chunks

if TYPE_CHECKING:
    from runner.sync.state import SiteState

#: the users suspended at a time
USERS = 1000


def unlisted(state: SiteState, options: SyncOptions) -> Iterator[list[LineResult]]:
    snapshot = options.snapshot
    assert snapshot is not None
    if snapshot.missing == "keep":
        return
    users = state.part(UserState)
    auth = str(snapshot.scope["auth"])
    part = state.part(Listed)
    listed = part.usernames
    u = state.t.user.c
    state.writes.wait()
    rows = state.raw.conn.execute(
        select(u.id, u.username).where(
            u.auth == auth, u.deleted == 0, u.suspended == 0, u.mnethostid == users.mnethost
        )
    )
    names = {str(name) for uid, name in rows if int(uid) not in users.protected}
    if state.withheld is not None:  # users an earlier file of the preview made
        names |= {
            str(row["username"])
            for uid, row in state.withheld.users.rows.items()
            if uid < 0 and row.get("auth") == auth and row.get("username")
        }
    acted = sorted(n for n in names - listed if part.may_act(0, n))
    for some in chunks(acted, USERS):
        users.prepare("username", some, some)
        results = []
        for name in some:
            row = users.find("username", name)
            if row is None or row.values.get("suspended") or row.values.get("auth") != auth:
                continue
            if row.id in users.protected:
                continue
            users.update(row, {"suspended": 1}, {})
            row.end_sessions = True
            results.append(missed(f"suspend {excerpt(name)}"))
        yield results
