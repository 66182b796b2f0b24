"""The Moodle releases whose tables postsync knows, and what each says of itself.

`postsync db init --moodle RELEASE` makes the tables of one of them as that release's
lib/db/install.xml defines them, and records it in `config` as Moodle's installer
does: `version` is version.php's `$version` as Moodle stores it (2023042400 for
2023042400.00), `release` and `branch` version.php's `$release` and `$branch`.
Code that needs to know a site's release reads `config.version`, as Moodle does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MoodleRelease:
    name: str  # as `--moodle` takes it: 4.2
    version: str  # config `version`
    release: str  # config `release`: the build checked
    branch: str  # config `branch`

    @property
    def number(self) -> tuple[int, int]:
        major, minor = self.name.split(".")
        return int(major), int(minor)

    def since(self, name: str) -> bool:
        """Whether this release is `name` or a later one."""
        major, minor = name.split(".")
        return self.number >= (int(major), int(minor))


RELEASES: dict[str, MoodleRelease] = {
    r.name: r
    for r in (
        MoodleRelease("4.2", "2023042400", "4.2 (Build: 20230424)", "402"),
        MoodleRelease("4.5", "2024100706", "4.5.6 (Build: 20250811)", "405"),
        MoodleRelease("5.0", "2025041400", "5.0 (Build: 20250414)", "500"),
        MoodleRelease("5.1", "2025100603", "5.1.3 (Build: 20260216)", "501"),
    )
}
#: what `db init` makes when no release is named, and the tables postsync's statements
#: are built on (a column only later releases have is never written: see tables.py)
NEWEST = "5.1"
