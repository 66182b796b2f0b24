"""The fleet examples: the container recipe (examples/container/Containerfile) and the
Kubernetes CronJobs (examples/kubernetes/postsync.yaml), checked without a container
runtime or a cluster: the manifests against Kubernetes' own schemas
(kubernetes-validate), their postsync invocations against postsync's parser, the
playbook of the ConfigMap through `postsync validate` and a preview on a real database,
the image's build stage by building the wheel from exactly the files it copies."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.cli.parser import build_parser
from tests.conftest import CLI, ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate")

CONTAINERFILE = ROOT / "examples" / "container" / "Containerfile"
MANIFESTS = ROOT / "examples" / "kubernetes" / "postsync.yaml"


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def instructions() -> list[tuple[str, str]]:
    """The Containerfile's instructions, continuation lines joined, comments dropped."""
    text = "\n".join(
        line for line in CONTAINERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ).replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_the_manifests_are_valid_kubernetes() -> None:
    kinds = []
    for document in documents():
        kubernetes_validate.validate(document, "1.30.0", strict=True)
        kinds.append(document["kind"])
    assert kinds == ["ConfigMap", "PersistentVolumeClaim", "CronJob", "CronJob"]


def test_a_bad_manifest_is_refused() -> None:
    """The check can fail: a misspelt field is refused in strict mode."""
    (cronjob, _health) = by_kind("CronJob")
    cronjob["spec"]["concurencyPolicy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cronjob, "1.30.0", strict=True)


def test_the_cronjobs_run_postsync_as_the_image_expects() -> None:
    nightly, health = by_kind("CronJob")
    user = next(rest for keyword, rest in instructions() if keyword == "USER")
    for cronjob in (nightly, health):
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        context = pod["securityContext"]
        assert f"{context['runAsUser']}:{context['runAsGroup']}" == user
        (container,) = pod["containers"]
        build_parser().parse_args(container["args"])  # SystemExit on a wrong option
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (container,) = nightly["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["run", "/etc/postsync/nightly.yml"]
    secret = next(e for e in container["env"] if e["name"] == "POSTSYNC_DB")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "postsync-db", "key": "POSTSYNC_DB"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["playbooks"] == "/etc/postsync" and mounts["area"] == "/srv/area"
    # where the image sends crash logs is a writable volume
    state = next(rest for k, rest in instructions() if k == "ENV" and "STATE_DIRECTORY" in rest)
    assert mounts["state"] == state.partition("=")[2]
    (status,) = health["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert status["args"][:2] == ["status", "/srv/area"]


def test_the_configmaps_playbook_validates_and_previews(tmp_path: Path, cli: CLI) -> None:
    (configmap,) = by_kind("ConfigMap")
    playbook = tmp_path / "nightly.yml"
    playbook.write_text(configmap["data"]["nightly.yml"])
    area = tmp_path / "area"
    area.mkdir()
    (area / "enrols.csv").write_text("cmd;cid;uid;rolename\nadd;MATH101;U0001;student\n")
    database = tmp_path / "moodle.db"
    assert cli("db", "init", f"sqlite:///{database}", "--demo").code == 0
    env = {"POSTSYNC_AREA": str(area), "POSTSYNC_DB": f"sqlite:///{database}"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert cli("validate", playbook).code == 0
        preview = cli("run", playbook, "--check")
    assert preview.code == 0, preview.out + preview.err
    assert "sync enrols.csv  (1 line: 1 changed" in preview.out


def test_the_containerfile_runs_postsync_as_a_user_without_privileges() -> None:
    steps = instructions()
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert all(f.startswith("docker.io/library/python:3.11-slim") for f in froms)
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    assert ("USER", "10001:10001") in final
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["postsync"]
    install = next(rest for k, rest in final if k == "RUN")
    assert '[postgresql,mysql,s3]"' in install and "--no-cache-dir" in install


def test_the_build_stage_builds_from_exactly_what_it_copies(tmp_path: Path) -> None:
    """The wheel builds from the files the Containerfile copies, and nothing else."""
    stage = []
    for keyword, rest in instructions():
        if keyword == "FROM" and stage:
            break
        stage.append((keyword, rest))
    context = tmp_path / "context"
    context.mkdir()
    for keyword, rest in stage:
        if keyword == "COPY":
            *sources, _dest = shlex.split(rest)
            for source in sources:
                path = ROOT / source
                target = context / source
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, target)
    (build,) = [rest for keyword, rest in stage if keyword == "RUN"]
    command = shlex.split(build.replace("/dist", str(tmp_path / "dist")))
    assert command[:2] == ["python", "-m"]
    result = subprocess.run(
        [sys.executable, *command[1:]], cwd=context, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("postsync-*-py3-none-any.whl")
    assert wheel.stat().st_size > 50_000
