"""How the site's Moodle hashes a users file's passwords, and which stored hashes log a
password in there, by the site's version (config `version`), as Moodle's
lib/moodlelib.php (hash_internal_user_password, validate_internal_user_password,
password_is_legacy_hash) does:

- before 4.3: bcrypt, as PHP's password_hash (`$2y$`, cost 10); a stored hash logs its
  password in when PHP's password_verify takes it (bcrypt, SHA-512 crypt...) or when it
  is the md5 of the password (the hashes of Moodle before 2.5, rehashed at the login);
- from 4.3 (MDL-67390): SHA-512 crypt, `$6$rounds=10000$` and a salt of 16 characters
  of ./0-9A-Za-z; a password of more than 128 bytes is refused (MAX_PASSWORD_CHARACTERS);
  bcrypt hashes still log in (Moodle rehashes them at the login), md5 ones never (the
  upgrade to 4.3 replaced those left by random hashes).

What lives in config.php is not known here: an md5 salted with passwordsaltmain, or a
hash of the password with one of 4.3's passwordpeppers, does not match (the password
is set again). Hashes are made on the machine's cores while the batch goes on
(runner.sync.users.hashing): `hash` gives a pending one, which the batch's writes wait for.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal

from runner.sync.base import LineFailed
from runner.sync.users import hashing

#: the first version hashing with SHA-512 crypt: the upgrade step of MDL-67390 (4.3)
SHA512_FROM = Decimal("2023082600.02")
ROUNDS = 10000  # hash_internal_user_password's, 4.3 and later
SALT_CHARS = 16
MAX_BYTES = 128  # MAX_PASSWORD_CHARACTERS, compared with PHP's strlen (bytes)
BCRYPT_COST = 10  # PHP's password_hash default
BCRYPT_BYTES = 72  # bcrypt reads no more; PHP ignores the rest
_VERSION = re.compile(r"[0-9]{10}(\.[0-9]+)?")
_MD5 = re.compile(r"[0-9a-f]{32}")  # 4.2's password_is_legacy_hash
_BCRYPT = ("$2y$", "$2b$", "$2a$")  # the bcrypt forms PHP's password_verify takes
#: a password's column in a preview that only counts (Passwords.hashed off): no hash
NOT_HASHED = "(not hashed: counted only)"


@dataclass(frozen=True)
class Passwords:
    """How the site hashes a password (SHA-512 crypt or bcrypt), and whether an md5
    hash still logs its password in there."""

    sha512: bool
    md5: bool
    #: off for a preview that only counts what a file takes (max_changes, before its
    #: chunks), which a password changes nothing of: a password is checked as Moodle
    #: takes it (NUL, length), not hashed (NOT_HASHED) nor checked against a stored hash
    #: (taken as the same), hashing being most of a users file's time
    hashed: bool = True

    @classmethod
    def of(cls, version: str) -> Passwords:
        """For the site's config `version` (2024100706, 2023082600.02...). An empty
        one (no such row) or one that is no Moodle version: bcrypt, which every Moodle
        from 2.5 on takes (4.3 and later rehash it at the login), and no md5 hash taken
        (4.3 and later refuse them: such a password is set again, in bcrypt)."""
        if not _VERSION.fullmatch(version.strip()):
            return cls(sha512=False, md5=False)
        sha512 = Decimal(version.strip()) >= SHA512_FROM
        return cls(sha512=sha512, md5=not sha512)

    def hash(self, password: str) -> hashing.Pending[str]:
        """The password hashed as the site's hash_internal_user_password hashes it (being
        made on the pool: the batch's writes wait for it)."""
        secret = password.encode()
        if b"\0" in secret:  # the reader refuses such lines; PHP's crypt refuses NULs
            raise LineFailed("the password has a NUL character, which Moodle cannot hash")
        if self.sha512 and len(secret) > MAX_BYTES:
            raise LineFailed(
                f"the password is longer than {MAX_BYTES} bytes: Moodle 4.3 and later refuse it"
            )
        if not self.hashed:
            return hashing.ready(NOT_HASHED)
        if self.sha512:
            return hashing.submit(_sha512, secret)
        return hashing.submit(_bcrypt, secret[:BCRYPT_BYTES])

    def check(self, password: str, stored: object) -> hashing.Pending[bool] | None:
        """`matches` started on the pool, for a stored hash that takes time to check
        (SHA-512 crypt, bcrypt; None for another)."""
        if self.hashed and isinstance(stored, str) and stored.startswith(("$6$", *_BCRYPT)):
            return hashing.submit(self.matches, password, stored)
        return None

    def matches(self, password: str, stored: object) -> bool:
        """Whether `stored` (a hash, or one being made) logs this password in on the site,
        as its validate_internal_user_password checks (False for a form it does not take)."""
        if not self.hashed:
            return True
        stored = str(hashing.settled(stored) or "")
        secret = password.encode()
        if self.sha512 and len(secret) > MAX_BYTES:
            return False
        if _MD5.fullmatch(stored):
            plain = (secret, _addslashes(secret))
            found = {hashlib.md5(s, usedforsecurity=False).hexdigest() for s in plain}
            return self.md5 and stored in found
        if stored.startswith("$6$"):
            return hashing.sha512_matches(secret, stored)
        if stored.startswith(_BCRYPT):
            return b"\0" not in secret and hashing.bcrypt_matches(secret[:BCRYPT_BYTES], stored)
        return False


def _sha512(secret: bytes) -> str:
    return hashing.sha512_crypt(secret, ROUNDS, SALT_CHARS)


def _bcrypt(secret: bytes) -> str:
    return hashing.bcrypt_hash(secret, BCRYPT_COST)


def _addslashes(secret: bytes) -> bytes:
    """PHP's addslashes: Moodle before 2.5 hashed some passwords with their quotes,
    backslashes and NULs escaped."""
    return re.sub(rb"(['\"\\])", rb"\\\1", secret).replace(b"\0", b"\\0")
