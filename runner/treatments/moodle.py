"""purge_moodle_caches: run Moodle's own cache purge once the run changed its tables."""

from __future__ import annotations

import os
import pwd
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.errors import MachineError, PlaybookError, StepError
from runner.core.secrets import register
from runner.core.text import plural, printable
from runner.step.facts import RunFacts
from runner.step.ledger import Outcomes
from runner.step.protocol import Action, Done, Plan
from runner.step.scope import StepScope
from runner.treatments.script import hide_this_process, run_script

SCRIPT = Path("admin", "cli", "purge_caches.php")
#: what the command passes on from postsync's environment (never a secret)
PASSED_ON = ("PATH", "LANG", "LC_ALL", "TZ")
#: the last characters of the command's output a failure quotes
QUOTED = 400


@dataclass(frozen=True)
class PurgeCachesConfig:
    #: where config.php and admin/cli are: moodle_dir, or the directory above Moodle
    #: 5.1's public/ when moodle_dir is that; the script runs from there
    site: Path
    php: tuple[str, ...]
    caches: tuple[str, ...]
    run_as: str | None
    timeout: int
    environment: tuple[tuple[str, str], ...] = ()


def _user(name: str) -> pwd.struct_passwd | None:
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


def _running_as() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class PurgeMoodleCaches:
    """Purge Moodle's caches with Moodle's own command-line script
    (`admin/cli/purge_caches.php`), so that the site sees what the run changed.

    postsync writes Moodle's tables directly; Moodle keeps some of what they hold in
    its caches (a course's groups, in the application cache shared by its processes)
    and keeps answering from them until they are purged. This step runs Moodle's script
    from the site's own directory, with its own config.php, once the run changed the
    database (a line changed by a sync file, or a group deleted by clean_empty_groups);
    it is skipped otherwise. The preview shows the command and runs nothing.

    Parameters:
      moodle_dir (string, required): the Moodle site's directory: the one holding
        config.php and admin/cli/purge_caches.php (Moodle's dirroot up to 5.0; from
        5.1, the directory above public/), or Moodle 5.1's dirroot itself (public/:
        the script is then found in the directory above it); templated, read only.
      php (list of strings, default ["php"]): the PHP command-line interpreter, and
        any options for it, e.g. ["/usr/bin/php8.2", "-d", "memory_limit=512M"].
      caches (list, default ["muc"]): what to purge, Moodle's own options: muc (the
        application, session and request caches: what postsync's writes make stale),
        theme, lang, js, filter, other. All six purge everything.
      run_as (string, optional): the user to run the script as, e.g. www-data (the
        web server's user, who owns the site's cache files). Needs postsync to run as
        root; never a user of uid 0, whatever its name (refused). Without it, the
        script runs as postsync's own user, which must not be root (files it would
        create in moodledata would be root's, which the web server then cannot change).
      timeout_seconds (integer >= 1, or a template rendering to one; default 600):
        the step fails when the script takes longer (it is stopped, with every process
        it started).
      environment (mapping, default {}): variables to set for the script, for a
        config.php that reads its settings with getenv(); templated, never printed
        (their values are masked as *** in the step's error, should the script print
        them).

    Example:
      - name: make the changes visible to Moodle
        purge_moodle_caches:
          moodle_dir: /var/www/moodle
          php: [/usr/bin/php]
          run_as: www-data

    Guarantees: the script gets no secret of postsync's: its environment holds only
    PATH, LANG, LC_ALL, TZ and `environment` (Moodle reads its database settings from
    its own config.php), it inherits no descriptor but stdin (/dev/null), stdout and
    stderr, and postsync makes its own process non-dumpable before it starts it, so
    that a script of the same user cannot read postsync's /proc/PID/environ (the
    database password), descriptors or memory; it never runs as root (uid 0 by any
    name); a missing directory, script, interpreter or user (or postsync running as
    root without run_as) is found when the playbook is checked, before anything runs:
    the preview and the run fail with the playbook's line (exit 4, nothing changed, not
    even by the sync steps before it), whatever the step's `when`; `postsync validate`
    warns of it (exit 0: it may check the playbook on a machine that is not the site's);
    it runs in a session and process group of its
    own, and no process it started outlives the step, not even one it detached into a
    session of its own (`setsid -f`, a daemon's double fork: on Linux postsync adopts
    them as their subreaper): a script that outlasts the timeout is stopped with every
    process it started (SIGTERM, SIGKILL 5 s later), and what it leaves behind when it
    ends is stopped the same way; a script that fails (exit status other than 0) or
    outlasts the timeout fails the step with the end of its output, its secrets masked
    before it is cut (no part of one is quoted).
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> PurgeCachesConfig:
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
                raise PlaybookError(
                    [scope.error("is not a string once rendered", "environment", name)]
                )
            # a config.php's settings (a database password): masked wherever postsync
            # would print them, the script's own output quoted in an error included
            register(value)
        where = Path(moodle_dir).expanduser()
        site = site_directory(where)
        config = PurgeCachesConfig(
            site=site if isinstance(site, Path) else where,
            php=php,
            caches=tuple(params.get("caches", ["muc"])),
            run_as=scope.render(run_as, "run_as") if run_as is not None else None,
            timeout=scope.integer(params.get("timeout_seconds", 600), "timeout_seconds", 1),
            environment=tuple(sorted(environment.items())),
        )
        # on this machine, before anything runs (validate, the preview, the run): a
        # step that cannot run must not leave the sync's changes unseen by Moodle
        problems = [
            scope.error(message, *filter(None, [key]))
            for key, message in self._problems(config, site)
        ]
        if problems:
            raise MachineError(problems)
        return config

    def _problems(self, config: PurgeCachesConfig, site: Path | str) -> list[tuple[str, str]]:
        """What keeps the script from running: (the parameter, or "" for the step's
        own; the problem)."""
        problems: list[tuple[str, str]] = []
        if isinstance(site, str):
            problems.append(("moodle_dir", site))
        if shutil.which(config.php[0]) is None:
            problems.append(("php", f"{config.php[0]} is not an executable found on PATH"))
        me = _running_as()
        if config.run_as is None:
            if os.geteuid() == 0:
                problems.append(
                    (
                        "",
                        "postsync runs as root: set run_as to the web server's user (e.g."
                        " www-data), so that the cache files Moodle writes stay the site's",
                    )
                )
        elif (user := _user(config.run_as)) is None:
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

    def command(self, config: PurgeCachesConfig) -> list[str]:
        return [
            *config.php,
            str(config.site / SCRIPT),
            *(f"--{cache}" for cache in config.caches),
        ]

    def plan(
        self, config: PurgeCachesConfig, run: RunFacts, ledger: Outcomes, services: object
    ) -> Plan:
        changes = ledger.database_changes()
        if changes == 0:
            return Plan(skip_reason="the run changed nothing in Moodle's database")
        who = f"as {config.run_as}" if config.run_as else f"as {_running_as()}"
        action = Action(
            "run", " ".join(self.command(config)), f"{who}, in {config.site}", data=config
        )
        summary = f"purge {', '.join(config.caches)} after {plural(changes, 'change')}"
        return Plan([action], summary)

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: object, services: object
    ) -> Iterator[Done]:
        for action in actions:
            config: PurgeCachesConfig = action.data
            yield Done(action, self._run(config))

    def _run(self, config: PurgeCachesConfig) -> str:
        env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
        env.update(config.environment)
        switch: dict[str, Any] = {}
        if config.run_as is not None and config.run_as != _running_as():
            user = _user(config.run_as)
            assert user is not None and not _root_user(user)  # checked by configure
            switch = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            env["HOME"] = user.pw_dir
        started = time.monotonic()
        hide_this_process()
        try:
            status, said = run_script(
                self.command(config), config.site, env, config.timeout, switch
            )
        except OSError as exc:
            raise StepError(f"cannot run {config.php[0]}: {exc.strerror or exc}") from None
        if status is None:
            raise StepError(f"Moodle's {SCRIPT} took more than {config.timeout} s and was stopped")
        if status != 0:
            # masked whole before this cut: the cut never leaves part of a secret
            quoted = printable(said.strip()[-QUOTED:]) or "no output"
            raise StepError(f"Moodle's {SCRIPT} exited with status {status}: {quoted}")
        return f"purged in {time.monotonic() - started:.1f} s"
