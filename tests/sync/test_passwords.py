"""A users file's passwords on sites of different Moodle releases (config `version`),
through `postsync run` on SQLite, PostgreSQL and MariaDB: hashed as the site's Moodle
hashes them (runner/sync/users/passwords.py: bcrypt before 4.3, SHA-512 crypt from
4.3), and a stored hash the site's Moodle takes for the file's password left alone,
whichever release wrote it; one it would not take is set again in its own scheme."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from passlib.hash import bcrypt, sha512_crypt

from runner.db.releases import NEWEST, RELEASES
from runner.sync.users.passwords import Passwords
from tests.sync.conftest import Site

MOODLE_42 = "2023042400"  # config `version` of Moodle 4.2 (version.php: 2023042400.00)
MOODLE_45 = "2024100706"  # 4.5.6
PASSWORD = "S3cret!"
#: PASSWORD hashed by PHP 8.2 with Moodle's recipes (lib/moodlelib.php)
PHP = {
    # 4.3+'s hash_internal_user_password: crypt(), $6$rounds=10000$ and 16 characters
    "sha512": "$6$rounds=10000$v9XJvh2w/Xn.Eb66$dR5gJQuFf/CYt6TIlK7SZBwe7kei1v0KnHqOEUnr05k"
    "o6OrZaIfbjljd.6Bv8k1tOl7NHMmVRAZizyW6A.3jj0",
    # the same with $fasthash (5000 rounds)
    "sha512 fast": "$6$rounds=5000$R/rMr/tWVH6Gc4kT$KM7Miw0e/Tk5z56bLdlftUoppZNmxFzY2ay7/sCB"
    "/hbC/KKMP3CV.18JZsR4sFtU5k9KOqnDXgw8QWZhknf7v0",
    # 4.2's: password_hash(PASSWORD_DEFAULT), and with $fasthash (cost 4)
    "bcrypt": "$2y$10$LfzGvz/6tedyTGSeYifukOnSeYCeDh9VBUsr68FTxTkk5mgdiyCsi",
    "bcrypt fast": "$2y$04$SV2vUM15YMfFe5n2TUxW9OgBYnaH5rEMosGvtmXcW97mZIq5WCmAi",
    # the same hash as other bcrypt libraries write it (PHP's password_verify takes it)
    "bcrypt 2b": "$2b$10$LfzGvz/6tedyTGSeYifukOnSeYCeDh9VBUsr68FTxTkk5mgdiyCsi",
    # Moodle before 2.5: md5 (a site without passwordsaltmain), rehashed by 4.2 at login
    "md5": "a3fab73d4603441e5a7acd86a4b03f15",
}
SALTED_MD5 = "5372e3f80eb94236bdad02cb4f9fa266"  # md5(PASSWORD . 'a-site-salt')
#: the formats, as Moodle's password_is_legacy_hash (4.3+) and crypt() write them
SHA512 = re.compile(r"\$6\$rounds=10000\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}")
BCRYPT = re.compile(r"\$2y\$10\$[./0-9A-Za-z]{53}")
HEADER = "username;idnumber;firstname;lastname;password\n"
STEP = "  - command: users\n    file: userimport*.csv\n    update_passwords: true\n"


def on_release(site: Site, version: str | None) -> None:
    """Make the site the given Moodle version (None: no version row)."""
    site.execute("DELETE FROM mdl_config WHERE name = 'version'")
    if version is not None:
        site.execute("INSERT INTO mdl_config (name, value) VALUES ('version', :v)", v=version)


def stored(site: Site, username: str = "p1") -> str:
    (row,) = site.query("SELECT password FROM mdl_user WHERE username = :u", u=username)
    return str(row[0])


def store(site: Site, hashed: str, username: str = "p1") -> None:
    site.execute("UPDATE mdl_user SET password = :p WHERE username = :u", p=hashed, u=username)


def preview_then_run(site: Site, body: str) -> str:
    """The file previewed, then run (-v: each line's outcome): the run's output, once
    checked that the preview printed the same and changed nothing."""
    site.write("userimport.csv", body)
    before = site.dump()
    preview = site.run("-v", "--check", steps=STEP)
    assert site.dump() == before
    run = site.run("-v", steps=STEP)
    assert preview.code == run.code == 0, preview.out + preview.err + run.out + run.err
    said = [line for line in run.out.splitlines() if not line.startswith("RECORD ")]
    assert preview.out.splitlines() == [
        "PREVIEW  --check: nothing is changed; the lines below are what the run would do",
        *said[:-1],
        said[-1] + "  (preview: nothing changed)",
    ]
    return run.out


def outcome(out: str) -> str:
    (line,) = [line.strip() for line in out.splitlines() if line.strip().startswith("line 2:")]
    return line


@pytest.mark.parametrize(
    ("version", "form", "verify"),
    [(MOODLE_42, BCRYPT, bcrypt.verify), (MOODLE_45, SHA512, sha512_crypt.verify)],
    ids=["4.2", "4.5"],
)
def test_a_new_users_password_is_hashed_as_the_sites_release(
    site: Site, version: str, form: re.Pattern[str], verify: object
) -> None:
    on_release(site, version)
    out = preview_then_run(site, HEADER + f"p1;P1;Pat;One;{PASSWORD}\n")
    assert outcome(out) == "line 2: user p1: ok (created)"
    hashed = stored(site)
    assert form.fullmatch(hashed), hashed
    assert callable(verify) and verify(PASSWORD, hashed) and not verify("S3cret?", hashed)
    assert outcome(preview_then_run(site, HEADER + f"p1;P1;Pat;One;{PASSWORD}\n")) == (
        "line 2: user p1: ok (unchanged)"
    )
    assert stored(site) == hashed


def test_postsyncs_own_site_is_the_newest_release_and_hashes_with_sha512(site: Site) -> None:
    """`postsync db init` writes the version of the release its tables come from."""
    newest = RELEASES[NEWEST].version
    assert site.query("SELECT value FROM mdl_config WHERE name = 'version'") == [(newest,)]
    preview_then_run(site, HEADER + f"p1;P1;Pat;One;{PASSWORD}\n")
    assert SHA512.fullmatch(stored(site))


TAKEN = {
    MOODLE_45: ["sha512", "sha512 fast", "bcrypt", "bcrypt fast", "bcrypt 2b"],
    MOODLE_42: ["sha512", "sha512 fast", "bcrypt", "bcrypt fast", "bcrypt 2b", "md5"],
}


@pytest.mark.parametrize("version", [MOODLE_42, MOODLE_45], ids=["4.2", "4.5"])
def test_an_unchanged_password_is_left_in_any_hash_the_site_takes(site: Site, version: str) -> None:
    """The nightly file with the same password: unchanged whatever hash Moodle keeps
    for it (4.3 and later rehash a bcrypt one at the user's login, 4.2 an md5 one and
    a SHA-512 one), so a user's login between two runs changes nothing."""
    on_release(site, version)
    body = HEADER + f"p1;P1;Pat;One;{PASSWORD}\n"
    preview_then_run(site, body)
    for name in TAKEN[version]:
        store(site, PHP[name])
        assert outcome(preview_then_run(site, body)) == "line 2: user p1: ok (unchanged)", name
        assert stored(site) == PHP[name]


@pytest.mark.parametrize(
    ("version", "before", "form"),
    [
        (MOODLE_45, PHP["md5"], SHA512),  # the upgrade to 4.3 made md5 hashes log nobody in
        (MOODLE_42, SALTED_MD5, BCRYPT),  # salted with config.php's passwordsaltmain
        (MOODLE_45, PHP["sha512"].replace("v9XJ", "v9XK"), SHA512),  # a hash of another
        (MOODLE_45, bcrypt.using(ident="2y", rounds=4).hash("Other1!"), SHA512),
        (MOODLE_42, sha512_crypt.using(rounds=10000).hash("Other1!"), BCRYPT),
        (MOODLE_45, "not cached", SHA512),
        (MOODLE_45, "", SHA512),
    ],
    ids=["md5 on 4.5", "salted md5", "other salt", "other on 4.5", "other on 4.2", "nc", "none"],
)
def test_a_password_the_stored_hash_does_not_take_is_set_in_the_sites_scheme(
    site: Site, version: str, before: str, form: re.Pattern[str]
) -> None:
    on_release(site, version)
    body = HEADER + f"p1;P1;Pat;One;{PASSWORD}\n"
    preview_then_run(site, body)
    store(site, before)
    assert outcome(preview_then_run(site, body)) == "line 2: user p1: ok (set password)"
    assert form.fullmatch(stored(site)) and Passwords.of(version).matches(PASSWORD, stored(site))
    assert outcome(preview_then_run(site, body)) == "line 2: user p1: ok (unchanged)"


def test_without_a_version_the_hash_is_bcrypt_and_md5_is_set_again(site: Site) -> None:
    """A database whose config has no Moodle version (not one Moodle made): bcrypt,
    which every Moodle from 2.5 on takes; an md5 hash, which 4.3 and later refuse, is
    replaced."""
    on_release(site, None)
    body = HEADER + f"p1;P1;Pat;One;{PASSWORD}\np2;P2;Pat;Two;{PASSWORD}\n"
    preview_then_run(site, body)
    assert BCRYPT.fullmatch(stored(site))
    store(site, PHP["sha512"])
    store(site, PHP["md5"], "p2")
    out = preview_then_run(site, body)
    assert "line 2: user p1: ok (unchanged)" in out
    assert "line 3: user p2: ok (set password)" in out
    assert BCRYPT.fullmatch(stored(site, "p2"))


def test_a_password_longer_than_moodle_4_3_takes_fails_its_line(site: Site) -> None:
    long = "é" * 64 + "x"  # 129 bytes: Moodle 4.3 and later refuse it (128 at most)
    body = HEADER + f"p1;P1;Pat;One;{long}\np2;P2;Pat;Two;{'é' * 64}\n"
    on_release(site, MOODLE_45)
    site.write("userimport.csv", body)
    result = site.run("-v", steps=STEP)
    assert result.code == 2
    assert (
        "line 2: user p1: failed: the password is longer than 128 bytes: Moodle 4.3 and later"
        " refuse it"
    ) in result.out
    assert "line 3: user p2: ok (created)" in result.out
    on_release(site, MOODLE_42)  # 4.2 takes it (bcrypt reads its first 72 bytes)
    out = preview_then_run(site, body)
    assert outcome(out) == "line 2: user p1: ok (created)"
    assert bcrypt.verify(long.encode()[:72], stored(site))


@pytest.mark.parametrize(
    ("version", "sha512", "md5"),
    [
        ("2023042400", False, True),  # 4.2
        ("2023042412.00", False, True),  # a 4.2 point release
        ("2023082600.01", False, True),  # 4.3 under development, before MDL-67390
        ("2023082600.02", True, False),  # MDL-67390's upgrade step
        ("2023100900", True, False),  # 4.3
        ("2025041400", True, False),  # 5.0
        ("2025100603.00", True, False),  # 5.1.3
        ("", False, False),
        ("4.5", False, False),
        ("2024100706.00 (Build: 20250811)", False, False),
    ],
)
def test_the_scheme_follows_the_version(version: str, sha512: bool, md5: bool) -> None:
    assert Passwords.of(version) == Passwords(sha512=sha512, md5=md5)


def test_md5_hashes_with_escaped_quotes_are_taken_as_moodle_2_did() -> None:
    """Moodle 4.2 still takes md5(addslashes(password)) (magic quotes' hashes)."""
    old = Passwords.of(MOODLE_42)
    assert old.matches("O'Brien-1", "7dfe510cb323be1a1ed44292be620822")  # PHP's
    assert old.matches("O'Brien-1", "4544d1d2a7ec42987f5b8d28ba1a6851")
    assert not Passwords.of(MOODLE_45).matches("O'Brien-1", "4544d1d2a7ec42987f5b8d28ba1a6851")


NO_PASSWORD_RUN = """
import sys
import runner.sync.step as step
step.SETTLE_SECONDS = 0.0
from runner.cli.main import main
code = main(sys.argv[1:])
import threading
hashers = [t for t in threading.enumerate() if t.name.startswith("postsync-hash")]
from runner.sync.users import hashing
libraries = ["passlib"] if "passlib" in sys.modules else []
if hashing._libcrypt.cache_info().currsize:
    libraries.append("libcrypt" if hashing._libcrypt() else "no libcrypt")
print(f"{len(hashers) > 0} {libraries}")
sys.exit(code)
"""


def test_the_hashing_pool_and_libraries_start_only_for_a_file_with_passwords(site: Site) -> None:
    """No thread nor library for a file without passwords; SHA-512 crypt by the system's
    libcrypt (ctypes), on the pool, without libpass (its slower fallback)."""

    def imported(body: str) -> str:
        site.write("userimport.csv", body)
        site.playbook(STEP)
        done = subprocess.run(
            [sys.executable, "-c", NO_PASSWORD_RUN, "run", str(site.root / "playbook.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.splitlines()[-1]

    assert imported("username;idnumber;firstname;lastname\np1;P1;Pat;One\n") == "False []"
    assert imported(HEADER + f"p1;P1;Pat;One;{PASSWORD}\n") == "True ['libcrypt']"


@pytest.mark.parametrize(
    ("version", "verify"),
    [(MOODLE_42, bcrypt.verify), (MOODLE_45, sha512_crypt.verify)],
    ids=["4.2", "4.5"],
)
def test_a_batch_hashed_on_the_pool_gives_each_user_their_own_password(
    site: Site, version: str, verify: object
) -> None:
    """Hashes are made on threads while the batch goes on: each user's hash is their
    own password's (none swapped), each with its own salt, and a user listed twice
    with the same password is hashed once and then unchanged (the second line compares
    with the hash still being made)."""
    on_release(site, version)
    count = 12 if version == MOODLE_42 else 60
    body = HEADER + "".join(f"u{i};U{i};Pat;One;Pw-{i}!\n" for i in range(count))
    body += "u3;U3;Pat;One;Pw-3!\nu4;U4;Pat;One;Other-4!\n"
    out = preview_then_run(site, body)
    assert f"line {count + 2}: user u3: ok (unchanged)" in out
    assert f"line {count + 3}: user u4: ok (set password)" in out
    hashes = {f"u{i}": stored(site, f"u{i}") for i in range(count)}
    salts = {h[:29] if h.startswith("$2") else h[: h.rindex("$")] for h in hashes.values()}
    assert len(salts) == count  # a salt each
    assert callable(verify)
    for i in range(count):
        secret = "Other-4!" if i == 4 else f"Pw-{i}!"
        assert verify(secret, hashes[f"u{i}"]), f"u{i}"
        assert not verify(f"Pw-{i + 1}!", hashes[f"u{i}"])


def test_without_the_systems_libcrypt_sha512_crypt_is_made_by_libpass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A machine whose libcrypt does not make SHA-512 crypt (macOS) or has none: the same
    hashes, by libpass; checking a stored hash too."""
    from runner.sync.users import hashing

    native = hashing.sha512_crypt(b"S3cret!", 10000, 16)
    monkeypatch.setattr(hashing, "_libcrypt", lambda: None)
    fallback = hashing.sha512_crypt(b"S3cret!", 10000, 16)
    for made in (native, fallback):
        assert SHA512.fullmatch(made) and sha512_crypt.verify("S3cret!", made)
        assert hashing.sha512_matches(b"S3cret!", made)
        assert not hashing.sha512_matches(b"S3cret?", made)
    assert hashing.sha512_matches(PASSWORD.encode(), PHP["sha512 fast"])
    assert not hashing.sha512_matches(PASSWORD.encode(), "$6$rounds=10000$tooshort")
    assert not hashing.sha512_matches(PASSWORD.encode(), "$6$sält$x")


def test_the_systems_libcrypt_checks_what_php_made_and_refuses_malformed_hashes() -> None:
    from runner.sync.users import hashing

    assert hashing._libcrypt() is not None, "this machine's libcrypt makes no SHA-512 crypt"
    secret = PASSWORD.encode()
    assert hashing.sha512_matches(secret, PHP["sha512"])
    assert hashing.sha512_matches(secret, PHP["sha512 fast"])
    assert not hashing.sha512_matches(b"S3cret?", PHP["sha512"])
    for bad in ("$6$", "$6$rounds=10000$", "$6$rounds=x$abc$def", "$6$sält$x", "*0"):
        assert not hashing.sha512_matches(secret, bad), bad
    for name in ("bcrypt", "bcrypt fast", "bcrypt 2b"):
        assert hashing.bcrypt_matches(secret, PHP[name]), name
        assert not hashing.bcrypt_matches(b"S3cret?", PHP[name]), name
    assert not hashing.bcrypt_matches(secret, "$2y$10$short")
    assert BCRYPT.fullmatch(hashing.bcrypt_hash(secret, 10))


def test_a_run_terminated_while_hashing_stops_soon_and_changes_nothing(site: Site) -> None:
    """SIGTERM while a batch of 2,000 bcrypt passwords is being hashed (about a minute
    of hashing on two cores): the run ends within seconds, not after the batch's hashes
    (a few wait at a time), exit 143, and no user is created."""
    on_release(site, MOODLE_42)
    site.write("userimport.csv", HEADER + "".join(f"t{i};T{i};A;B;Pw-{i}!\n" for i in range(2000)))
    site.playbook(STEP)
    before = site.dump()
    proc = subprocess.Popen(
        [sys.executable, "-c", NO_PASSWORD_RUN, "run", str(site.root / "playbook.yml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # started, hashing
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("still hashing 20 s after SIGTERM") from None
    assert proc.returncode == 143, out + err  # 128 + SIGTERM
    assert "FAILED   users  (interrupted)" in out, out + err
    assert site.dump() == before


@pytest.mark.parametrize(
    ("version", "verify"),
    [(MOODLE_42, bcrypt.verify), (MOODLE_45, sha512_crypt.verify)],
    ids=["4.2", "4.5"],
)
def test_a_file_in_chunks_under_max_changes_hashes_each_password_once(
    site: Site, version: str, verify: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """commit_every with max_changes previews the file whole before its first chunk, to
    count what it takes: that preview hashes no password (it would double a users
    file's time, most of which is hashing); the run hashes each once, as in one
    transaction, and a line repeating a password is still found unchanged."""
    from runner.sync.users import hashing

    made: list[str] = []
    submit = hashing.submit

    def counted(hasher: Any, *args: Any) -> Any:
        made.append(getattr(hasher, "__name__", ""))
        return submit(hasher, *args)

    monkeypatch.setattr(hashing, "submit", counted)
    on_release(site, version)
    body = HEADER + "".join(f"u{i};U{i};Pat;One;Pw-{i}!\n" for i in range(6))
    body += "u3;U3;Pat;One;Pw-3!\nu4;U4;Pat;One;Other-4!\n"
    site.write("userimport.csv", body)
    step = STEP + "    commit_every: {lines: 2}\n    max_changes: {delete_user: 1}\n"
    run = site.run("-v", steps=step)
    assert run.code == 0, run.out + run.err
    assert "line 8: user u3: ok (unchanged)" in run.out
    assert "line 9: user u4: ok (set password)" in run.out
    assert made.count("_sha512" if version == MOODLE_45 else "_bcrypt") == 7  # 6 new, 1 set
    assert callable(verify)
    for i in range(6):
        assert verify("Other-4!" if i == 4 else f"Pw-{i}!", stored(site, f"u{i}")), f"u{i}"
