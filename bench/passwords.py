"""New users with passwords: a users step against its hashing floor.

    python bench/passwords.py                            # 10,000 users, SHA-512 crypt (4.3+)
    python bench/passwords.py --scheme bcrypt --users 2000   # a site before 4.3
    python bench/passwords.py --again    # the same file the next night, update_passwords
    python bench/passwords.py --guarded  # in chunks under max_changes (previewed whole first)

A SQLite site (1,000 users) takes a users file of --users new users, --share of them
with a password, on a site whose config `version` is Moodle 4.5's (SHA-512 crypt,
$6$rounds=10000$) or 4.2's (bcrypt, cost 10). Each round, rotating which goes first:

- ours: `postsync run` on a fresh copy of the site;
- floor: the same number of hashes, by the same library (the system's libcrypt for
  SHA-512 crypt, pyca's bcrypt), spread over the cores this process may run on (a
  thread each), timed from the first hash to the last: no implementation hashing as
  the site does can make them faster on this machine;
- no passwords: the same file without its passwords (what the step costs besides
  hashing).

Prints each side's timings, their medians, and ours / floor and ours / (floor + no
passwords) as medians of the rounds' ratios; checks that every run created every user
and that each password logs in (its hash verified).

With --again, the template has already taken the file, and each side is its next
night under `update_passwords: true`: every line's password checked against the hash
stored for it (nothing changes); the floor is as many checks (hashes with the stored
salts) spread over the cores.

With --guarded, the step commits in chunks (`commit_every: {lines: 2000}`) under
`max_changes: {delete_user: 10}`: the file is previewed whole before its first chunk,
a preview that counts and hashes no password; ours should stay near the unguarded
figure, not add a second hashing.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import POSTSYNC, PY, Timing, timed
from bench.site import build_site

PLAYBOOK = """\
name: users
area: area
database: "sqlite:///{db}"
sync:
  - command: users
    file: userimport.csv
    settle_seconds: 0
    update_passwords: true
{guard}"""
GUARD = "    commit_every: {lines: 2000}\n    max_changes: {delete_user: 10}\n"
VERSION = {"sha512": "2024100706", "bcrypt": "2023042400"}  # 4.5.6, 4.2

FLOOR = """
import os, secrets, sys, time
from concurrent.futures import ThreadPoolExecutor
scheme, count = sys.argv[1], int(sys.argv[2])
cores = len(os.sched_getaffinity(0))
if scheme == "bcrypt":
    import bcrypt
    def one(secret):
        return bcrypt.hashpw(secret, bcrypt.gensalt(rounds=10))
else:
    import ctypes, ctypes.util
    crypt_r = ctypes.CDLL(ctypes.util.find_library("crypt")).crypt_r
    crypt_r.restype = ctypes.c_char_p
    crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    def one(secret):
        data = ctypes.create_string_buffer(262144)
        salt = "".join(secrets.choice(ALPHABET) for _ in range(16))
        return crypt_r(secret, f"$6$rounds=10000${salt}".encode(), data)
secrets_ = [f"Pw-{i:07d}!".encode() for i in range(count)]
start = time.perf_counter()
with ThreadPoolExecutor(cores) as pool:
    made = list(pool.map(one, secrets_))
seconds = time.perf_counter() - start
assert len(made) == count and all(made)
with open(os.environ["BENCH_SELF_TIME"], "w") as out:
    out.write(str(seconds))
"""


def users_file(path: Path, users: int, share: float, passwords: bool = True) -> int:
    """`users` new users, one in every 1/share of them with a password; the count of
    passwords."""
    every = max(1, round(1 / share)) if share > 0 else 0
    given = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write("username;idnumber;firstname;lastname;email;password\n")
        for i in range(users):
            password = ""
            if passwords and every and i % every == 0:
                password, given = f"Pw-{i:07d}!", given + 1
            out.write(f"new{i:07d};N{i:07d};New;User {i};new{i:07d}@example.org;{password}\n")
    return given


def check(db: Path, users: int, passwords: bool, scheme: str) -> None:
    """Every user created; a sample of the passwords log in (their hash verified)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT username, password FROM mdl_user WHERE username LIKE 'new%'"
        ).fetchall()
    assert len(rows) == users, f"{len(rows)} of {users} users created"
    hashed = [(u, p) for u, p in rows if p]
    if not passwords:
        assert not hashed, "a password set from a file without passwords"
        return
    from passlib.hash import bcrypt, sha512_crypt

    prefix = "$6$rounds=10000$" if scheme == "sha512" else "$2y$10$"
    salts = {p[:29] if scheme == "bcrypt" else p[: p.rindex("$")] for _, p in hashed}
    assert len(salts) == len(hashed), "two hashes with one salt"
    for username, stored in hashed[:: max(1, len(hashed) // 20)]:
        assert stored.startswith(prefix), stored[:10]
        secret = f"Pw-{int(username[3:]):07d}!"
        verify = sha512_crypt.verify if scheme == "sha512" else bcrypt.verify
        assert verify(secret, stored), f"{username}'s password does not log in"


def _hashes(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        query = "SELECT username, password FROM mdl_user WHERE username LIKE 'new%' ORDER BY 1"
        return conn.execute(query).fetchall()


def run(
    template: Path, feed: Path, users: int, passwords: bool, scheme: str, guard: str = ""
) -> Timing:
    """One run on a fresh copy of the template (the copy is not timed)."""
    work = template.parent / "run"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template, work)
    try:
        shutil.copy(feed, work / "area" / "userimport.csv")
        playbook = work / "playbook.yml"
        playbook.write_text(PLAYBOOK.format(db=work / "site.db", guard=guard))
        before = _hashes(work / "site.db")
        timing = timed([*POSTSYNC, "run", "playbook.yml"], work)
        check(work / "site.db", users, passwords, scheme)
        if before and passwords:
            assert _hashes(work / "site.db") == before, "a password set again"
        return timing
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.5, help="of them with a password")
    parser.add_argument("--scheme", choices=sorted(VERSION), default="sha512")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--again", action="store_true", help="the next night's run")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--guarded", action="store_true", help="commit_every + max_changes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="postsync-passwords-", dir=args.work))
    try:
        template = work / "template"
        (template / "area").mkdir(parents=True)
        db = template / "site.db"
        build_site(f"sqlite:///{db}", users=1_000, courses=10)
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE mdl_config SET value = ? WHERE name = 'version'", (VERSION[args.scheme],)
            )
        with_passwords, without = work / "with.csv", work / "without.csv"
        count = users_file(with_passwords, args.users, args.share)
        users_file(without, args.users, args.share, passwords=False)
        if args.again:
            shutil.copy(with_passwords, template / "area" / "userimport.csv")
            (template / "playbook.yml").write_text(PLAYBOOK.format(db=db, guard=""))
            timed([*POSTSYNC, "run", "playbook.yml"], template)
            check(db, args.users, True, args.scheme)
            (template / "playbook.yml").unlink()
            print("the template took the file: each side is its next night")
        guard = GUARD if args.guarded else ""
        print(f"{args.users:,} new users, {count:,} with a password ({args.scheme})", flush=True)
        sides: list[tuple[str, list[Timing], object]] = [
            (
                "ours",
                [],
                lambda: run(template, with_passwords, args.users, True, args.scheme, guard),
            ),
            ("floor", [], lambda: timed([PY, "-c", FLOOR, args.scheme, str(count)], work)),
            (
                "no passwords",
                [],
                lambda: run(template, without, args.users, args.again, args.scheme, guard),
            ),
        ]
        for r in range(args.rounds):
            shift = r % len(sides)
            for name, timings, side in sides[shift:] + sides[:shift]:
                timing = side()  # type: ignore[operator]
                timings.append(timing)
                print(f"  round {r + 1} {name}: {timing.seconds:.2f} s", flush=True)
        ours, floor, plain = (s[1] for s in sides)
        for name, timings, _ in sides:
            seconds = ", ".join(f"{t.seconds:.2f}" for t in timings)
            median = statistics.median(t.seconds for t in timings)
            print(f"{name}: {seconds} s (median {median:.2f} s)")
        over_floor = statistics.median(
            o.seconds / f.seconds for o, f in zip(ours, floor, strict=True)
        )
        over_both = statistics.median(
            o.seconds / (f.seconds + p.seconds) for o, f, p in zip(ours, floor, plain, strict=True)
        )
        print(f"ours / floor: {over_floor:.2f}x; ours / (floor + no passwords): {over_both:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
