"""Password hashes made by compiled code on the machine's cores while the batch goes on.

A users file's line hands its password to `submit` and gets a `Pending` hash back; the
batch's writes wait for the hashes (`settle`) just before they need them, so hashing a
batch overlaps reading, parsing and looking up the lines after it. Hashes run in a pool
of threads, one per core this process may run on: both libraries release Python's lock
while they hash, and a thread hands the password to no other process.

- SHA-512 crypt (Moodle 4.3 and later) by the system's libcrypt (libxcrypt or glibc's,
  the library /etc/shadow's hashes are made by), through ctypes' `crypt_r`: checked
  once against a known hash, and when the machine has none that makes it (macOS), by
  libpass's own implementation instead (slower, and holding Python's lock);
- bcrypt (before 4.3) by pyca's bcrypt, `$2y$` as PHP writes it (`$2b$` is the same
  hash under OpenBSD's name).

At most `WINDOW` hashes a thread are waiting at a time: a line handing a password over
waits for a free place, so memory stays bounded, and a run stopped (Ctrl-C, SIGTERM)
ends within a few hashes' time, not after the batch's.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # imported by the first password hashed
    from concurrent.futures import Future, ThreadPoolExecutor

#: hash_internal_user_password's salt alphabet (crypt's ./0-9A-Za-z)
SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: a hash libcrypt must reproduce to be used (made by libpass: same password, salt, rounds)
_KNOWN = (
    "pässwörd".encode(),
    "$6$rounds=10000$postsyncKnownAns$YFXyg9bkWV5Kn6GHPYHv74tmqK1BIC9/lCTOBjExuG6cH8H"
    "aW616t1DliwRDlqkVMFjLcOoXum3YVUNdhg/tH/",
)
#: struct crypt_data: 32,768 bytes in libxcrypt, 131,232 in glibc's own libcrypt
_CRYPT_DATA = 262144
#: hashes waiting or being made, per thread
WINDOW = 16
_local = threading.local()
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_places: threading.BoundedSemaphore | None = None


T = TypeVar("T")


class Pending(Generic[T]):
    """A hash being made (or checked): `value()` waits for it (and raises what hashing
    raised)."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[T]) -> None:
        self._future = future

    def value(self) -> T:
        return self._future.result()

    def __repr__(self) -> str:  # never the password, nor the hash
        return "<password hash>"


def submit(hasher: Callable[..., T], *args: Any) -> Pending[T]:
    """`hasher(*args)` started on the pool, once a place is free in its window."""
    pool, places = _executor()
    places.acquire()
    try:
        future = pool.submit(hasher, *args)
    except BaseException:
        places.release()
        raise
    future.add_done_callback(lambda _: places.release())
    return Pending(future)


def ready(value: T) -> Pending[T]:
    """A Pending already made (`value`, with no work on the pool)."""
    from concurrent.futures import Future

    future: Future[T] = Future()
    future.set_result(value)
    return Pending(future)


def settled(value: Any) -> Any:
    """The value, or the hash it is once made."""
    return value.value() if isinstance(value, Pending) else value


def settle(values: dict[str, Any]) -> None:
    """Each pending hash among the values replaced by the hash (waited for)."""
    for name, value in values.items():
        if isinstance(value, Pending):
            values[name] = value.value()


def threads() -> int:
    """The cores this process may run on (its CPU affinity, or the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # a system without affinity
        return max(1, os.cpu_count() or 1)


def _executor() -> tuple[ThreadPoolExecutor, threading.BoundedSemaphore]:
    global _pool, _places
    with _pool_lock:
        if _pool is None or _places is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(threads(), thread_name_prefix="postsync-hash")
            _places = threading.BoundedSemaphore(WINDOW * threads())
        return _pool, _places


# -- SHA-512 crypt -------------------------------------------------------------------------


def sha512_crypt(secret: bytes, rounds: int, salt_chars: int) -> str:
    """The secret hashed with SHA-512 crypt, a new random salt."""
    salt = "".join(secrets.choice(SALT_ALPHABET) for _ in range(salt_chars))
    setting = f"$6$rounds={rounds}${salt}"
    if _libcrypt() is not None:
        made = _crypt(secret, setting)
        if made is not None and made.startswith(setting + "$"):
            return made
    from passlib.hash import sha512_crypt as builtin

    return str(builtin.using(rounds=rounds, salt=salt).hash(secret))


def sha512_matches(secret: bytes, stored: str) -> bool:
    """Whether the SHA-512 crypt hash `stored` is the secret's."""
    if _libcrypt() is not None and b"\0" not in secret:
        try:
            made = _crypt(secret, stored)
        except UnicodeEncodeError:  # not a hash crypt could have made
            return False
        return made is not None and hmac.compare_digest(made.encode(), stored.encode())
    from passlib.hash import sha512_crypt as builtin

    try:
        return bool(builtin.verify(secret, stored))
    except ValueError:  # not a well-formed hash
        return False


def _crypt(secret: bytes, setting: str) -> str | None:
    """libcrypt's crypt_r (None: it refused the setting). Each thread has its own
    crypt_data, zeroed before each call."""
    import ctypes

    crypt_r = _libcrypt()
    assert crypt_r is not None
    if b"\0" in secret:
        raise ValueError("a password with a NUL byte cannot be hashed by crypt")
    data = getattr(_local, "data", None)
    if data is None:
        data = _local.data = ctypes.create_string_buffer(_CRYPT_DATA)
    ctypes.memset(data, 0, _CRYPT_DATA)
    made: bytes | None = crypt_r(secret, setting.encode("ascii"), data)
    if not made or made.startswith(b"*"):  # NULL, or libxcrypt's "*0"/"*1" failure token
        return None
    return made.decode("ascii")


@cache
def _libcrypt() -> Any:
    """The system's crypt_r when it makes SHA-512 crypt hashes as Moodle's PHP does (the
    known hash reproduced), else None."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    try:
        crypt_r = ctypes.CDLL(name).crypt_r
    except (OSError, AttributeError):
        return None
    crypt_r.restype = ctypes.c_char_p
    crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    secret, known = _KNOWN
    setting = known.rsplit("$", 1)[0]
    data = ctypes.create_string_buffer(_CRYPT_DATA)
    made = crypt_r(secret, setting.encode("ascii"), data)
    return crypt_r if made is not None and made.decode("ascii", "replace") == known else None


# -- bcrypt ------------------------------------------------------------------------------


def bcrypt_hash(secret: bytes, cost: int) -> str:
    """The secret hashed with bcrypt as PHP's password_hash writes it (`$2y$`)."""
    import bcrypt

    made = bcrypt.hashpw(secret, bcrypt.gensalt(rounds=cost, prefix=b"2b")).decode("ascii")
    return "$2y$" + made[4:]


def bcrypt_matches(secret: bytes, stored: str) -> bool:
    """Whether the bcrypt hash `stored` ($2y$, $2b$ or $2a$) is the secret's."""
    import bcrypt

    try:
        return bool(bcrypt.checkpw(secret, stored.encode("ascii")))
    except ValueError:  # not a well-formed hash
        return False
