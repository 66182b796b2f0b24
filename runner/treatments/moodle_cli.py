"""Running a PHP command-line script from a Moodle site, for the steps that do
(purge_moodle_caches, moodle_events): the parameters they share (moodle_dir, php,
run_as, timeout_seconds, environment), what keeps the script from running (checked
before anything runs), and the run itself: confined, bounded in time, its secrets
masked in what it printed."""

from __future__ import annotations

import os
import pwd
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.errors import MachineError, PlaybookError, StepError
from runner.core.secrets import register
from runner.core.text import printable
from runner.step.scope import StepScope
from runner.treatments.script import hide_this_process, run_script

#: Moodle's own script, which tells a site's directory (purge_moodle_caches runs it)
SCRIPT = Path("admin", "cli", "purge_caches.php")
#: what the command passes on from postsync's environment (never a secret)
PASSED_ON = ("PATH", "LANG", "LC_ALL", "TZ")
#: the last characters of the command's output a failure quotes
QUOTED = 400


@dataclass(frozen=True)
class MoodleCli:
    """How to run a PHP script of (or for) a Moodle site."""

    #: where config.php and admin/cli are: moodle_dir, or the directory above Moodle
    #: 5.1's public/ when moodle_dir is that; the script runs from there
    site: Path
    php: tuple[str, ...]
    run_as: str | None
    timeout: int
    environment: tuple[tuple[str, str], ...] = ()


def user_named(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _root_user(user: pwd.struct_passwd) -> bool:
    """uid 0 whatever its name (root, toor...)."""
    return user.pw_uid == 0


def site_directory(moodle_dir: Path) -> Path | str:
    """The directory holding the site's config.php and admin/cli/purge_caches.php:
    moodle_dir itself, or, when moodle_dir is Moodle 5.1's dirroot (`public/`, where
    version.php and the plugins are), the directory above it (config.php and admin/cli
    stay there). What is wrong with moodle_dir when neither holds them."""
    candidates = [moodle_dir, *([moodle_dir.parent] if moodle_dir.name == "public" else [])]
    for where in candidates:
        if (where / "config.php").is_file() and (where / SCRIPT).is_file():
            return where
    if not moodle_dir.is_dir():
        return f"{moodle_dir} is not a directory"
    if not (moodle_dir / "config.php").is_file():
        return (
            f"{moodle_dir} holds no config.php: is it the site's directory (its"
            " dirroot, or the directory above Moodle 5.1's public/)?"
        )
    above = " (nor does the directory above it)" if len(candidates) > 1 else ""
    return f"{moodle_dir} holds no {SCRIPT}{above}"


def running_as() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def configure_cli(params: Mapping[str, Any], scope: StepScope) -> tuple[MoodleCli, list[Any]]:
    """The shared parameters, rendered and checked: the configuration, and what keeps
    the script from running on this machine (the step's problems, to raise with its
    own as a MachineError: found before anything runs, by validate, the preview and
    the run alike)."""
    moodle_dir = scope.render(params["moodle_dir"], "moodle_dir")
    if not isinstance(moodle_dir, str) or not moodle_dir.strip():
        raise PlaybookError(
            [scope.error("renders to an empty path; is a variable empty?", "moodle_dir")]
        )
    php = tuple(scope.render(params.get("php", ["php"]), "php"))
    if not php or not all(isinstance(part, str) and part for part in php):
        raise PlaybookError([scope.error("renders to an empty command", "php")])
    run_as = params.get("run_as")
    environment = scope.render(params.get("environment", {}), "environment")
    for name, value in environment.items():
        if not isinstance(value, str):
            raise PlaybookError([scope.error("is not a string once rendered", "environment", name)])
        # a config.php's settings (a database password): masked wherever postsync
        # would print them, the script's own output quoted in an error included
        register(value)
    where = Path(moodle_dir).expanduser()
    site = site_directory(where)
    config = MoodleCli(
        site=site if isinstance(site, Path) else where,
        php=php,
        run_as=scope.render(run_as, "run_as") if run_as is not None else None,
        timeout=scope.integer(params.get("timeout_seconds", 600), "timeout_seconds", 1),
        environment=tuple(sorted(environment.items())),
    )
    problems = [
        scope.error(message, *filter(None, [key])) for key, message in _problems(config, site)
    ]
    return config, problems


def raise_problems(problems: list[Any]) -> None:
    if problems:
        raise MachineError(problems)


def _problems(config: MoodleCli, site: Path | str) -> list[tuple[str, str]]:
    """What keeps the script from running: (the parameter, or "" for the step's own;
    the problem)."""
    problems: list[tuple[str, str]] = []
    if isinstance(site, str):
        problems.append(("moodle_dir", site))
    if shutil.which(config.php[0]) is None:
        problems.append(("php", f"{config.php[0]} is not an executable found on PATH"))
    me = running_as()
    if config.run_as is None:
        if os.geteuid() == 0:
            problems.append(
                (
                    "",
                    "postsync runs as root: set run_as to the web server's user (e.g."
                    " www-data), so that the cache files Moodle writes stay the site's",
                )
            )
    elif (user := user_named(config.run_as)) is None:
        problems.append(("run_as", f"no user {config.run_as} on this machine"))
    elif _root_user(user):
        problems.append(
            (
                "run_as",
                f"{config.run_as} is root (uid 0): the script never runs as root;"
                " name the web server's user (e.g. www-data)",
            )
        )
    elif config.run_as != me and os.geteuid() != 0:
        problems.append(
            ("run_as", f"{config.run_as} needs postsync to run as root (it runs as {me})")
        )
    return problems


def switched_user(config: MoodleCli) -> pwd.struct_passwd | None:
    """The user the script runs as when it is not postsync's own."""
    if config.run_as is None or config.run_as == running_as():
        return None
    user = user_named(config.run_as)
    assert user is not None and not _root_user(user)  # checked by configure_cli
    return user


def run_cli(config: MoodleCli, command: Sequence[str], label: str) -> tuple[str, float]:
    """Run `command` from the site's directory as the configured user: (the end of its
    output, its secrets masked; the seconds it took). A script that cannot start,
    fails or outlasts the timeout fails the step (`label`: the script as users know
    it), quoting the end of its output; `StepError.said` holds that end."""
    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    env.update(config.environment)
    switch: dict[str, Any] = {}
    user = switched_user(config)
    if user is not None:
        switch = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env["HOME"] = user.pw_dir
    started = time.monotonic()
    hide_this_process()
    try:
        status, said = run_script(command, config.site, env, config.timeout, switch)
    except OSError as exc:
        raise StepError(f"cannot run {config.php[0]}: {exc.strerror or exc}") from None
    if status is None:
        raise ScriptFailed(f"{label} took more than {config.timeout} s and was stopped", said)
    if status != 0:
        # masked whole before this cut: the cut never leaves part of a secret
        quoted = printable(said.strip()[-QUOTED:]) or "no output"
        raise ScriptFailed(f"{label} exited with status {status}: {quoted}", said)
    return said, time.monotonic() - started


class ScriptFailed(StepError):
    """The script failed or was stopped; `said`: the end of its output (masked)."""

    def __init__(self, message: str, said: str) -> None:
        super().__init__(message)
        self.said = said
