"""S3-compatible object storage for archives and reports (`pip install 'postsync[s3]'`).

A `dest` of `s3://bucket/key` sends the file there, through fsspec's s3fs. It must lie
under one of the playbook's `roots:` (`s3://bucket/prefix`). Credentials, region and
endpoint come from the standard AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL...) or from the playbook's
`storage:` section.

The guarantees are those of local files: an object already holding the same content
counts as done, a different object is never silently replaced (`on_conflict`), and an
upload counts only once the object is read back with the planned size and sha256, so
delete_control_files never deletes a control file whose archive upload failed.
"""

from __future__ import annotations

import gzip
import hashlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runner.core import faults
from runner.core.errors import StepError
from runner.core.secrets import register

SCHEME = "s3://"
CHUNK = 1 << 20
#: `storage:` keys and the s3fs arguments they become
STORAGE_KEYS = ("endpoint_url", "region", "access_key_id", "secret_access_key", "session_token")


def is_remote(raw: str) -> bool:
    return raw.startswith(SCHEME)


def parse(raw: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`; ValueError with the reason."""
    rest = raw[len(SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{raw}: no bucket (s3://BUCKET/KEY)")
    parts = key.split("/") if key else []
    if any(p in (".", "..") for p in parts) or "" in parts[:-1]:
        raise ValueError(f"{raw}: '.', '..' and empty segments are not allowed in an S3 key")
    return bucket, key


class Storage:
    """The run's object store: one s3fs filesystem, made on first use."""

    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self._fs: Any = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:
                import s3fs  # type: ignore[import-untyped,import-not-found,unused-ignore]
            except ModuleNotFoundError:
                raise StepError(
                    "s3:// destinations need the s3 extra: pip install 'postsync[s3]'"
                ) from None
            o = self.options
            client: dict[str, Any] = {}
            if o.get("region"):
                client["region_name"] = o["region"]
            self._fs = s3fs.S3FileSystem(
                key=o.get("access_key_id") or None,
                secret=o.get("secret_access_key") or None,
                token=o.get("session_token") or None,
                endpoint_url=o.get("endpoint_url") or None,
                client_kwargs=client,
                skip_instance_cache=True,
                use_listings_cache=False,
            )
        return self._fs

    def sha256(self, path: RemotePath, *, gzipped: bool = False) -> str | None:
        """sha256 of the object's content (decompressed when `gzipped`); None if absent."""
        digest = hashlib.sha256()
        try:
            with self.fs.open(path.url, "rb", block_size=CHUNK) as raw:
                handle = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        except (gzip.BadGzipFile, EOFError):
            return "not-gzip"
        except OSError as exc:
            raise StepError(f"{path}: cannot read: {exc}") from None
        return digest.hexdigest()

    def upload_verified(
        self,
        path: RemotePath,
        chunks: Iterable[bytes],
        sha256: str,
        *,
        gzipped: bool = False,
        mtime: int = 0,
        source_name: str = "",
    ) -> None:
        """Upload, then read the object back: its size and sha256 must be the planned
        ones (StepError otherwise, and the object counts as not written)."""
        with tempfile.TemporaryFile() as staged:
            if gzipped:
                with gzip.GzipFile(
                    filename=source_name, mode="wb", fileobj=staged, mtime=mtime, compresslevel=6
                ) as packed:
                    for chunk in chunks:
                        packed.write(chunk)
            else:
                for chunk in chunks:
                    staged.write(chunk)
            size = staged.tell()
            staged.seek(0)
            try:
                with self.fs.open(path.url, "wb") as out:
                    while chunk := staged.read(CHUNK):
                        out.write(chunk)
            except (OSError, ValueError) as exc:
                raise StepError(f"{path}: upload failed: {exc}") from None
        faults.point("remote.uploaded")
        try:
            found = self.fs.info(path.url)["size"]
        except (OSError, KeyError) as exc:
            raise StepError(f"{path}: not found after upload: {exc}") from None
        written = self.sha256(path, gzipped=gzipped)
        if found != size or written != sha256:
            raise StepError(
                f"{path}: verification failed (size {found}, sha256 {written}; expected"
                f" {size} bytes, sha256 {sha256})"
            )


@dataclass(frozen=True)
class RemotePath:
    """An object's name, with the path-like bits the file treatments use."""

    bucket: str
    key: str
    store: Storage = field(compare=False, repr=False, hash=False)

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def with_name(self, name: str) -> RemotePath:
        head, slash, _ = self.key.rpartition("/")
        return RemotePath(self.bucket, f"{head}{slash}{name}", self.store)

    def is_within(self, root: tuple[str, str]) -> bool:
        bucket, prefix = root
        prefix = prefix.rstrip("/")
        return self.bucket == bucket and (
            not prefix or self.key == prefix or self.key.startswith(prefix + "/")
        )


def storage_options(rendered: dict[str, str]) -> dict[str, str]:
    """The `storage:` section, its secrets registered so that they are never printed."""
    for key in ("secret_access_key", "session_token"):
        register(rendered.get(key))
    return {k: v for k, v in rendered.items() if k in STORAGE_KEYS and v}
