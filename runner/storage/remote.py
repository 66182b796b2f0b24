"""S3-compatible object storage for archives and reports (`pip install 'postsync[s3]'`).

A `dest` of `s3://bucket/key` sends the file there, through boto3. It must lie
under one of the playbook's `roots:` (`s3://bucket/prefix`). Credentials, region and
endpoint come from the standard AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL...) or from the playbook's
`storage:` section.

The guarantees are those of local files: an object already holding the same content
counts as done, a different object is never silently replaced (`on_conflict`; the
upload is a conditional create), and an upload counts only once the store checked its
sha256 or it is read back with the planned size and sha256, so delete_control_files
never deletes a control file whose archive upload failed.
"""

from __future__ import annotations

import base64
import contextlib
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
#: `storage:` keys (the boto3 client's arguments)
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
    """The run's object store: one boto3 S3 client, made on first use (boto3 is
    imported then, never at start-up)."""

    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ModuleNotFoundError:
                raise StepError(
                    "s3:// destinations need boto3 in postsync's environment (its s3 extra):"
                    " pip install 'boto3>=1.35'"
                ) from None
            o = self.options
            self._client = boto3.client(
                "s3",
                endpoint_url=o.get("endpoint_url") or None,
                region_name=o.get("region") or None,
                aws_access_key_id=o.get("access_key_id") or None,
                aws_secret_access_key=o.get("secret_access_key") or None,
                aws_session_token=o.get("session_token") or None,
                config=Config(retries={"mode": "standard", "max_attempts": 5}),
            )
        return self._client

    def close(self) -> None:
        """The client's connections closed (a later use makes a new client)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def sha256(self, path: RemotePath, *, gzipped: bool = False) -> str | None:
        """sha256 of the object's content (decompressed when `gzipped`); None if absent."""
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=path.bucket, Key=path.key)["Body"]
            with body:
                handle: Any = gzip.GzipFile(fileobj=body, mode="rb") if gzipped else body
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        except ClientError as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StepError(f"{path}: cannot read: {exc}") from None
        except (gzip.BadGzipFile, EOFError):
            return "not-gzip"
        except (BotoCoreError, OSError) as exc:
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
        replace: bool = False,
    ) -> None:
        """Upload; unless `replace`, only if no object has the name yet (a conditional
        create: two runs never replace each other's object). The store checks the
        bytes against their sha256 (ChecksumSHA256) where it supports it; where it
        does not say so, the object is read back: its size and sha256 must be the
        planned ones (StepError otherwise, and the object counts as not written)."""
        from botocore.exceptions import BotoCoreError, ClientError

        with tempfile.TemporaryFile() as staged:
            content = hashlib.sha256()  # what is stored, decompressed: the planned one?
            if gzipped:
                with gzip.GzipFile(
                    filename=source_name, mode="wb", fileobj=staged, mtime=mtime, compresslevel=6
                ) as packed:
                    for chunk in chunks:
                        content.update(chunk)
                        packed.write(chunk)
            else:
                for chunk in chunks:
                    content.update(chunk)
                    staged.write(chunk)
            if content.hexdigest() != sha256:
                raise StepError(
                    f"{path}: its source changed since the plan (sha256 {content.hexdigest()},"
                    f" planned {sha256}); nothing uploaded"
                )
            size = staged.tell()
            staged.seek(0)
            sent = hashlib.sha256()  # the bytes sent (compressed, if so)
            while block := staged.read(CHUNK):
                sent.update(block)
            staged.seek(0)
            checksum = base64.b64encode(sent.digest()).decode("ascii")
            extra = {} if replace else {"IfNoneMatch": "*"}
            try:
                answer = self.client.put_object(
                    Bucket=path.bucket,
                    Key=path.key,
                    Body=staged,
                    ContentLength=size,
                    ChecksumSHA256=checksum,
                    **extra,
                )
            except ClientError as exc:
                if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise StepError(
                        f"{path} appeared since the plan (another run?); it was left alone"
                        " and not replaced"
                    ) from None
                raise StepError(f"{path}: upload failed: {exc}") from None
            except (BotoCoreError, OSError, ValueError) as exc:
                raise StepError(f"{path}: upload failed: {exc}") from None
        faults.point("remote.uploaded")
        if answer.get("ChecksumSHA256") == checksum:
            return  # the store checked the bytes it stored against their sha256
        # a store that does not check SHA-256 checksums (moto, some S3-compatible
        # ones): read the object back
        try:
            head = self.client.head_object(Bucket=path.bucket, Key=path.key)
            found = int(head["ContentLength"])
        except (ClientError, BotoCoreError, KeyError) as exc:
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
