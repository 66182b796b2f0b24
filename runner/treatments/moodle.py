"""purge_moodle_caches: run Moodle's own cache purge once the run changed its tables."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.errors import PlaybookError, StepError
from runner.core.secrets import longest, redact, register
from runner.core.text import plural, printable
from runner.step.context import RunContext, StepScope
from runner.step.protocol import Action, Done, Plan

SCRIPT = Path("admin", "cli", "purge_caches.php")
#: what the command passes on from postsync's environment (never a secret)
PASSED_ON = ("PATH", "LANG", "LC_ALL", "TZ")
#: the last characters of the command's output a failure quotes
QUOTED = 400
#: the output kept while the script runs (its end: what a failure quotes), in bytes;
#: more than QUOTED characters can take, so that the quote never starts at its start
KEPT = 64 * 1024
#: how long a stopped script's process group has to end on SIGTERM before SIGKILL
GRACE = 5.0
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@dataclass(frozen=True)
class PurgeCachesConfig:
    moodle_dir: Path
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
      moodle_dir (string, required): the Moodle site's directory (dirroot: it holds
        config.php and admin/cli/purge_caches.php); templated, read only.
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
    name); a missing directory, script, interpreter or user fails the step before
    anything runs, in the preview too; it runs in a session and process group of its
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
        return PurgeCachesConfig(
            moodle_dir=Path(moodle_dir).expanduser(),
            php=php,
            caches=tuple(params.get("caches", ["muc"])),
            run_as=scope.render(run_as, "run_as") if run_as is not None else None,
            timeout=scope.integer(params.get("timeout_seconds", 600), "timeout_seconds", 1),
            environment=tuple(sorted(environment.items())),
        )

    def _problems(self, config: PurgeCachesConfig) -> list[str]:
        """What keeps the script from running, checked before it does (preview too)."""
        problems = []
        where = config.moodle_dir
        if not (where / "config.php").is_file():
            problems.append(f"moodle_dir {where} holds no config.php: is it the site's dirroot?")
        elif not (where / SCRIPT).is_file():
            problems.append(f"moodle_dir {where} holds no {SCRIPT}")
        if shutil.which(config.php[0]) is None:
            problems.append(f"php: {config.php[0]} is not an executable found on PATH")
        me = _running_as()
        if config.run_as is None:
            if os.geteuid() == 0:
                problems.append(
                    "postsync runs as root: set run_as to the web server's user (e.g."
                    " www-data), so that the cache files Moodle writes stay the site's"
                )
        elif (user := _user(config.run_as)) is None:
            problems.append(f"run_as: no user {config.run_as} on this machine")
        elif _root_user(user):
            problems.append(
                f"run_as: {config.run_as} is root (uid 0): the script never runs as root;"
                " name the web server's user (e.g. www-data)"
            )
        elif config.run_as != me and os.geteuid() != 0:
            problems.append(
                f"run_as: {config.run_as} needs postsync to run as root (it runs as {me})"
            )
        return problems

    def command(self, config: PurgeCachesConfig) -> list[str]:
        return [
            *config.php,
            str(config.moodle_dir / SCRIPT),
            *(f"--{cache}" for cache in config.caches),
        ]

    def plan(self, config: PurgeCachesConfig, run: RunContext) -> Plan:
        changes = run.database_changes()
        if changes == 0:
            return Plan(skip_reason="the run changed nothing in Moodle's database")
        problems = self._problems(config)
        if problems:
            return Plan(summary="Moodle's caches not purged", errors=problems)
        who = f"as {config.run_as}" if config.run_as else f"as {_running_as()}"
        action = Action(
            "run", " ".join(self.command(config)), f"{who}, in {config.moodle_dir}", data=config
        )
        summary = f"purge {', '.join(config.caches)} after {plural(changes, 'change')}"
        return Plan([action], summary)

    def apply(self, actions: Sequence[Action], run: RunContext) -> Iterator[Done]:
        for action in actions:
            config: PurgeCachesConfig = action.data
            yield Done(action, self._run(config))

    def _run(self, config: PurgeCachesConfig) -> str:
        env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
        env.update(config.environment)
        switch: dict[str, Any] = {}
        if config.run_as is not None and config.run_as != _running_as():
            user = _user(config.run_as)
            assert user is not None and not _root_user(user)  # checked by the plan
            switch = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            env["HOME"] = user.pw_dir
        started = time.monotonic()
        hide_this_process()
        try:
            status, said = run_script(
                self.command(config), config.moodle_dir, env, config.timeout, switch
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


def _prctl() -> Any:
    """libc's prctl, or None where there is none (not Linux)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def hide_this_process() -> None:
    """Make postsync's process non-dumpable (prctl PR_SET_DUMPABLE 0), for good.

    The script is the site's code (its config.php) and may run as postsync's own user:
    a process of the same user reads another's /proc/PID/environ (the database
    password postsync was given), its open descriptors and memory, unless that process
    is non-dumpable. It stays so for the rest of the run: a child the script left
    behind is no more trusted once the script is done. (Not on Linux: nothing to do.)
    """
    prctl = _prctl()
    if prctl is None:  # not Linux, no /proc/PID/environ
        return
    if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise StepError(
            "cannot hide postsync's process from the script (prctl PR_SET_DUMPABLE:"
            f" {os.strerror(code)}): not run"
        )


def run_script(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    switch: Mapping[str, Any],
) -> tuple[int | None, str]:
    """Run `command` in a session of its own: (its exit status, or None when it
    outlasted `timeout`; the end of its output, its secrets masked).

    It inherits no descriptor but its standard ones (stdin: /dev/null). Once it is done,
    or stopped, its whole process group goes too: SIGTERM then, after GRACE seconds,
    SIGKILL; the script's own process is reaped last, so that its group's id is never
    another's while it is signalled. Then every process it detached (a session of its
    own: `setsid -f`, a daemon's double fork) goes the same way: see `_adopting`.
    """
    deadline = time.monotonic() + timeout
    margin = longest()
    said = bytearray()
    with (
        _adopting(),
        subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
            **switch,
        ) as process,
    ):
        assert process.stdout is not None
        done = _read_all(process.stdout.fileno(), said, deadline, KEPT + margin)
        done = done and _ended(process.pid, deadline)
        if not done:
            _signal_group(process.pid, signal.SIGTERM)
            _ended(process.pid, time.monotonic() + GRACE)
        _signal_group(process.pid, signal.SIGKILL)  # what is left of it
        status = process.wait()
    text = redact(said.decode("utf-8", "replace"))  # masked whole, before any cut
    if len(said) > KEPT:
        # where a secret cut by the kept window's start would have left its end
        text = text[margin:]
    return (status if done else None), text


def _read_all(fd: int, said: bytearray, deadline: float, keep: int) -> bool:
    """Read `fd` to its end (True) or until `deadline` (False), keeping its last `keep`
    bytes in `said`."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            data = os.read(fd, 65536)
            if not data:
                return True
            said += data
            del said[:-keep]
    return False


def _ended(pid: int, deadline: float) -> bool:
    """Whether process `pid` ended by `deadline`; left unreaped (a zombie keeps its
    process group's id)."""
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left of it
        os.killpg(pgid, signum)


@contextlib.contextmanager
def _adopting() -> Iterator[None]:
    """postsync a child subreaper (prctl PR_SET_CHILD_SUBREAPER) while the script runs,
    and every process that became its child meanwhile stopped and reaped at the end.

    A process the script detaches (a session and group of its own, its parent gone)
    escapes its group's signal; as postsync's orphan, not init's, it is found again: a
    child of postsync's that it did not have before (postsync starts no other process;
    those it had are left alone). The setting it had is restored once they are gone.
    (Not on Linux: no subreaper; the script's group is stopped all the same.)
    """
    prctl = _prctl()
    if prctl is None:
        yield
        return
    was = ctypes.c_int(0)
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0) != 0 or (
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0
    ):
        code = ctypes.get_errno()
        raise StepError(
            "cannot adopt what the script would leave behind (prctl"
            f" PR_SET_CHILD_SUBREAPER: {os.strerror(code)}): not run"
        )
    before = set(_children())
    try:
        yield
    finally:
        try:
            _stop_adopted(before)
        finally:
            prctl(_PR_SET_CHILD_SUBREAPER, was.value, 0, 0, 0)


def _children() -> dict[tuple[int, int], int]:
    """postsync's child processes: (pid, start time) -> process group.

    /proc lists processes, not threads: a thread of postsync's is never among them; the
    start time tells a pid reused from the one it was.
    """
    me = os.getpid()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                stat = file.read()
        except OSError:  # ended meanwhile
            continue
        # after the command's name, which may hold ") ": state, ppid, pgrp... (proc(5))
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[1]) == me:
            found[(int(entry.name), int(fields[19]))] = int(fields[2])
    return found


def _stop_adopted(before: set[tuple[int, int]]) -> None:
    """Stop and reap every child of postsync's not in `before`: SIGTERM (its group too
    when it leads one, as a detached process does), SIGKILL after GRACE seconds, until
    none is left (one ending hands its own children over to postsync)."""
    signalled: set[tuple[int, int]] = set()
    started = time.monotonic()
    while adopted := {key: pgid for key, pgid in _children().items() if key not in before}:
        late = time.monotonic() - started >= GRACE
        if time.monotonic() - started >= 3 * GRACE:  # unkillable (a D state): left
            return
        for (pid, start), pgid in adopted.items():
            if late or (pid, start) not in signalled:
                signum = signal.SIGKILL if late else signal.SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    if pgid == pid:
                        os.killpg(pgid, signum)
                    else:
                        os.kill(pid, signum)
                signalled.add((pid, start))
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
