"""Archives and reports to S3-compatible storage, against a real S3 API server (moto's
server mode, started on loopback by the tests), through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, missing
from tests.pgserver import free_port

BUCKET = "moodle-archive"
ENROLS = "cmd;cid;uid;rolename\nadd;MATH101;U0001;student\nadd;NOPE;U0002;student\n"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API server (moto) on loopback for the whole session."""
    try:
        import boto3  # noqa: F401  (the extra the feature needs)
        from moto.server import ThreadedMotoServer
    except ModuleNotFoundError as exc:
        missing("moto[server] and boto3", exc)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """AWS environment pointing at the server, and a fresh bucket; yields a boto3 client."""
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def objects(client: Any, bucket: str = BUCKET) -> dict[str, bytes]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


@pytest.fixture
def workspace(tmp_path: Path, cli: CLI) -> Path:
    assert cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--demo").code == 0
    (tmp_path / "area").mkdir()
    (tmp_path / "area" / "enrols.csv").write_text(ENROLS)
    return tmp_path


def playbook(
    workspace: Path,
    *,
    dest: str = f"s3://{BUCKET}/moodle/archives/{{{{ file.name }}}}",
    roots: str = "",
    extra: str = "",
    archive: str = "",
) -> Path:
    path = workspace / "playbook.yml"
    path.write_text(
        f"name: s3\narea: area\ndatabase: sqlite:///moodle.db\n"
        f"roots: ['s3://{BUCKET}/moodle'{', ' + repr(roots) if roots else ''}]\n{extra}"
        "sync:\n  - command: enrolments\n    file: enrols.csv\n"
        "post_treatments:\n"
        f"  - archive_control_files: {{dest: {dest!r}{archive}}}\n"
        f"  - save_report: {{dest: 's3://{BUCKET}/moodle/reports/{{{{ file.name }}}}.txt'}}\n"
        "  - delete_control_files: {}\n"
    )
    return path


def test_archive_and_report_go_to_s3_then_the_control_file_is_deleted(
    workspace: Path, cli: CLI, s3: Any
) -> None:
    result = cli("run", playbook(workspace))
    assert result.code == 2, result.out + result.err  # one line fails on purpose
    assert "archive enrols.csv -> s3://moodle-archive/moodle/archives/enrols.csv" in result.out
    stored = objects(s3)
    assert stored["moodle/archives/enrols.csv"] == ENROLS.encode()
    assert b"no such course" in stored["moodle/reports/enrols.csv.txt"]
    assert not (workspace / "area" / "enrols.csv").exists()
    record = json.loads(
        next((workspace / "area" / ".postsync" / "runs").glob("*.json")).read_text()
    )
    assert [s["status"] for s in record["steps"]][-3:] == ["changed", "changed", "changed"]


def test_same_object_counts_as_done_and_a_different_one_is_never_replaced(
    workspace: Path, cli: CLI, s3: Any
) -> None:
    s3.put_object(Bucket=BUCKET, Key="moodle/archives/enrols.csv", Body=ENROLS.encode())
    s3.put_object(Bucket=BUCKET, Key="moodle/other/enrols.csv", Body=b"something else\n")
    result = cli("run", playbook(workspace))
    assert "already archived" in result.out
    (workspace / "area" / "enrols.csv").write_text(ENROLS)
    result = cli("run", playbook(workspace, dest=f"s3://{BUCKET}/moodle/other/enrols.csv"))
    assert "-> s3://moodle-archive/moodle/other/enrols.1.csv" in result.out, result.out
    stored = objects(s3)
    assert stored["moodle/other/enrols.csv"] == b"something else\n"
    assert stored["moodle/other/enrols.1.csv"] == ENROLS.encode()


def test_gzip_archive(workspace: Path, cli: CLI, s3: Any) -> None:
    import gzip

    result = cli("run", playbook(workspace, archive=", compress: gzip"))
    assert result.code == 2, result.out + result.err
    assert gzip.decompress(objects(s3)["moodle/archives/enrols.csv.gz"]) == ENROLS.encode()
    assert not (workspace / "area" / "enrols.csv").exists()


def test_upload_failure_deletes_nothing(workspace: Path, cli: CLI, s3: Any) -> None:
    # a bucket that does not exist: the upload fails
    path = playbook(
        workspace, dest="s3://no-such-bucket/a/{{ file.name }}", roots="s3://no-such-bucket/a"
    )
    result = cli("run", path)
    assert result.code == 3, result.out + result.err
    assert "FAILED   archive_control_files" in result.out
    assert "no-such-bucket" in result.out
    assert (workspace / "area" / "enrols.csv").read_text() == ENROLS


def test_an_object_changed_before_verification_is_not_taken(
    workspace: Path, cli: CLI, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read back after the upload: another content there fails the step, and the
    control file stays."""
    from runner.core import faults

    real = faults.point

    def tamper(name: str) -> None:
        if name == "remote.uploaded":
            s3.put_object(Bucket=BUCKET, Key="moodle/archives/enrols.csv", Body=b"tampered\n")
        real(name)

    monkeypatch.setattr(faults, "point", tamper)
    result = cli("run", playbook(workspace))
    assert result.code == 3, result.out + result.err
    assert "verification failed" in result.out
    assert (workspace / "area" / "enrols.csv").read_text() == ENROLS


def test_destination_outside_the_s3_roots_is_refused_before_anything_runs(
    workspace: Path, cli: CLI, s3: Any
) -> None:
    path = playbook(workspace, dest=f"s3://{BUCKET}/elsewhere/{{{{ file.name }}}}")
    result = cli("run", path)
    assert result.code == 4
    assert "playbook.yml:" in result.err and "not under an object-storage root" in result.err
    assert objects(s3) == {}
    path = playbook(workspace, dest=f"s3://{BUCKET}/moodle/../x/{{{{ file.name }}}}")
    assert "'..'" in cli("run", path).err


def test_preview_uploads_nothing(workspace: Path, cli: CLI, s3: Any) -> None:
    result = cli("run", playbook(workspace), "--check")
    assert result.code == 2, result.out + result.err
    assert "archive enrols.csv -> s3://moodle-archive/moodle/archives/enrols.csv" in result.out
    assert objects(s3) == {}
    assert (workspace / "area" / "enrols.csv").exists()


def test_storage_section_instead_of_the_environment_and_its_secret_is_never_printed(
    workspace: Path, cli: CLI, s3: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("ARCHIVE_SECRET", "very-secret-key-42")
    extra = (
        "storage:\n"
        f"  endpoint_url: {s3_endpoint}\n"
        "  region: us-east-1\n"
        "  access_key_id: testing\n"
        "  secret_access_key: '{{ env.ARCHIVE_SECRET }}'\n"
    )
    bad = playbook(
        workspace,
        extra=extra,
        dest="s3://no-such-bucket/a/{{ file.name }}",
        roots="s3://no-such-bucket/a",
    )
    failed = cli("run", bad, "--output", "json")
    assert failed.code == 3
    assert "very-secret-key-42" not in failed.out + failed.err
    (workspace / "area" / "enrols.csv").write_text(ENROLS)
    result = cli("run", playbook(workspace, extra=extra))
    assert result.code == 2, result.out + result.err
    assert objects(s3)["moodle/archives/enrols.csv"] == ENROLS.encode()
    for path in (workspace / "area" / ".postsync").rglob("*"):
        if path.is_file():
            assert b"very-secret-key-42" not in path.read_bytes(), path


def test_without_the_s3_extra_nothing_runs(
    workspace: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.step.scope

    monkeypatch.setattr(runner.step.scope, "_has_s3", lambda: False)
    result = cli("run", playbook(workspace))
    assert result.code == 3
    assert "pip install 'boto3>=1.35'" in result.err
    assert result.out == ""  # not even the sync ran
    assert (workspace / "area" / "enrols.csv").read_text() == ENROLS


def test_an_upload_never_replaces_an_object_that_appeared_since_the_plan(s3: Any) -> None:
    """The upload is a conditional create (IfNoneMatch: *): an object another run
    stored meanwhile stays, and the step is told; on_conflict: overwrite replaces."""
    import hashlib

    from runner.core.errors import StepError
    from runner.storage.remote import RemotePath, Storage

    store = Storage({})
    path = RemotePath(BUCKET, "archives/x.csv", store)
    s3.put_object(Bucket=BUCKET, Key="archives/x.csv", Body=b"the other run's")
    mine = b"mine\n"
    with pytest.raises(StepError, match="appeared since the plan"):
        store.upload_verified(path, [mine], hashlib.sha256(mine).hexdigest())
    assert objects(s3)["archives/x.csv"] == b"the other run's"
    store.upload_verified(path, [mine], hashlib.sha256(mine).hexdigest(), replace=True)
    assert objects(s3)["archives/x.csv"] == mine
    # a source that changed since the plan is not uploaded
    with pytest.raises(StepError, match="its source changed since the plan"):
        store.upload_verified(path.with_name("y.csv"), [b"other"], hashlib.sha256(mine).hexdigest())
    assert "archives/y.csv" not in objects(s3)


def test_a_store_that_checks_checksums_is_not_read_back() -> None:
    """Where the store echoes the SHA-256 it checked (AWS S3), the object is not read
    back; where it does not (moto, some S3-compatible stores: the test above), it is."""
    import hashlib

    from runner.storage.remote import RemotePath, Storage

    calls: list[str] = []

    class Checking:
        def put_object(self, **kwargs: Any) -> dict[str, str]:
            calls.append("put")
            assert kwargs["IfNoneMatch"] == "*"
            return {"ChecksumSHA256": kwargs["ChecksumSHA256"]}

        def head_object(self, **kwargs: Any) -> dict[str, int]:
            calls.append("head")
            return {"ContentLength": 0}

    store = Storage({})
    store._client = Checking()
    data = b"content\n"
    store.upload_verified(RemotePath("b", "k", store), [data], hashlib.sha256(data).hexdigest())
    assert calls == ["put"]
