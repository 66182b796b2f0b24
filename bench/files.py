"""B2 (archive + delete 10,000 files) and B3 (purge 100,000 files), with their
ansible-playbook equivalents."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

from bench.harness import (
    POSTSYNC,
    PY,
    Result,
    Timing,
    alternate,
    entry,
    record_for,
    timed,
    with_ansible,
)

B2_PLAYBOOK = """\
name: B2
area: area
post_treatments:
  - archive_control_files: {dest: "archives/{{ file.name }}"}
  - delete_control_files: {}
"""


B2_BASELINE = """
import os, shutil, sys
area = sys.argv[1]
os.makedirs(os.path.join(area, "archives"), exist_ok=True)
for name in sorted(os.listdir(area)):
    src = os.path.join(area, name)
    if name.endswith(".csv"):
        shutil.copy2(src, os.path.join(area, "archives", name))
        os.unlink(src)
"""


# The floor of B2: the same copies made durable before any original is deleted (one
# os.sync() for all, the cheapest way), which an archive step must do: a crash after
# the deletions must not lose what the archives hold.
B2_FLOOR = """
import os, shutil, sys
area = sys.argv[1]
os.makedirs(os.path.join(area, "archives"), exist_ok=True)
names = [n for n in sorted(os.listdir(area)) if n.endswith(".csv")]
for name in names:
    shutil.copy2(os.path.join(area, name), os.path.join(area, "archives", name))
os.sync()
for name in names:
    os.unlink(os.path.join(area, name))
"""


ANSIBLE_B2 = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: archive the control files
      ansible.builtin.copy:
        src: "{{ item }}"
        dest: "{{ area }}/archives/"
        mode: preserve
      loop: "{{ query('ansible.builtin.fileglob', area + '/*.csv') }}"
    - name: delete the control files
      ansible.builtin.file:
        path: "{{ item }}"
        state: absent
      loop: "{{ query('ansible.builtin.fileglob', area + '/*.csv') }}"
"""


def b2(work: Path, rounds: int, scale: float) -> list[Result]:
    count = max(100, int(10_000 * scale))
    rng = random.Random(2)
    contents = {
        f"enrols_{i:05d}.csv": (
            "cmd;cid;uid;rolename\n"
            + "".join(
                f"add;C{rng.randrange(999):06d};U{rng.randrange(99999):07d};student\n"
                for _ in range(60)
            )
        ).encode()[:2048]
        for i in range(count)
    }

    def setup(name: str) -> Path:
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        area = root / "area"
        area.mkdir(parents=True)
        for fname, data in contents.items():
            (area / fname).write_bytes(data)
        (root / "playbook.yml").write_text(B2_PLAYBOOK)
        entries = [entry(area / f, d) for f, d in contents.items()]
        record_for(area, entries, root / "playbook.yml")
        return root

    def ours() -> Timing:
        root = setup("b2-ours")
        record = next((root / "area" / ".postsync" / "runs").glob("*.json"))
        t = timed([*POSTSYNC, "post", str(record)], root)
        assert not list((root / "area").glob("*.csv")), "postsync left control files"
        return t

    def base(script: str = B2_BASELINE) -> Timing:
        root = setup("b2-base")
        return timed([PY, "-c", script, str(root / "area")], root)

    r = Result("B2", f"archive + delete {count:,} control files (2 KB each)", "<= 1.5x", limit=1.5)
    r.extra["baseline"] = "a Python loop of `shutil.copy2` + `os.unlink`"
    r.floor_label = (
        "the same copies made durable (one `os.sync()`) before the originals are deleted"
    )
    alternate(rounds, ours, base, r, lambda: base(B2_FLOOR))
    r.ansible_sample = min(count, 50)
    r.ansible_factor = count / r.ansible_sample

    def sample() -> tuple[Path, dict[str, str]]:
        root = work / "b2-ansible"
        shutil.rmtree(root, ignore_errors=True)
        (root / "area").mkdir(parents=True)
        for name in list(contents)[: r.ansible_sample]:
            (root / "area" / name).write_bytes(contents[name])
        return root, {"area": str(root / "area")}

    with_ansible(r, min(rounds, 3), ANSIBLE_B2, sample)
    return [r]


B3_PLAYBOOK = """\
name: B3
area: area
post_treatments:
  - purge_old_files: {paths: [archives], older_than_days: 30, recurse: true}
"""


ANSIBLE_B3 = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: find the old files
      ansible.builtin.find:
        paths: "{{ top }}"
        age: 30d
        recurse: true
      register: old
    - name: delete them
      ansible.builtin.file:
        path: "{{ item.path }}"
        state: absent
      loop: "{{ old.files }}"
"""


def b3(work: Path, rounds: int, scale: float) -> list[Result]:
    count = max(1000, int(100_000 * scale))
    old = time.time() - 60 * 86400

    def setup(name: str) -> Path:
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        for d in range(100):
            directory = root / "area" / "archives" / f"d{d:02d}"
            directory.mkdir(parents=True)
            for i in range(count // 100):
                path = directory / f"f{i:05d}.csv"
                path.write_bytes(b"x")
                if i % 2:
                    os.utime(path, (old, old))
        (root / "playbook.yml").write_text(B3_PLAYBOOK)
        return root

    def ours() -> Timing:
        root = setup("b3-ours")
        return timed([*POSTSYNC, "run", "playbook.yml"], root)

    def base() -> Timing:
        root = setup("b3-base")
        return timed(
            ["find", str(root / "area" / "archives"), "-type", "f", "-mtime", "+30", "-delete"],
            root,
        )

    r = Result("B3", f"purge {count:,} files, half older than 30 days", "<= 2x", limit=2.0)
    r.extra["baseline"] = "`find DIR -type f -mtime +30 -delete`"
    alternate(rounds, ours, base, r)
    r.ansible_sample = min(count, 200)
    r.ansible_factor = count / r.ansible_sample

    def sample() -> tuple[Path, dict[str, str]]:
        root = work / "b3-ansible"
        shutil.rmtree(root, ignore_errors=True)
        top = root / "archives"
        top.mkdir(parents=True)
        for i in range(r.ansible_sample):
            path = top / f"f{i:05d}.csv"
            path.write_bytes(b"x")
            if i % 2:
                os.utime(path, (old, old))
        return root, {"top": str(top)}

    with_ansible(r, rounds, ANSIBLE_B3, sample)
    return [r]
