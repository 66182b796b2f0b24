"""purge_moodle_caches: run Moodle's own cache purge once the run changed its tables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.core.text import plural
from runner.step.facts import RunFacts
from runner.step.ledger import Outcomes
from runner.step.protocol import Action, Done, Plan
from runner.step.scope import StepScope
from runner.treatments.moodle_cli import (
    SCRIPT,
    MoodleCli,
    configure_cli,
    raise_problems,
    run_cli,
    running_as,
)


@dataclass(frozen=True)
class PurgeCachesConfig:
    cli: MoodleCli
    caches: tuple[str, ...]


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
    ends is stopped the same way, and so is a script running when postsync is
    interrupted (Ctrl-C, SIGTERM: postsync then exits 130 or 143 once it is gone, and
    never waits for it to end on its own); a script that fails (exit status other than 0) or
    outlasts the timeout fails the step with the end of its output, its secrets masked
    before it is cut (no part of one is quoted).
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> PurgeCachesConfig:
        cli, problems = configure_cli(params, scope)
        # on this machine, before anything runs (validate, the preview, the run): a
        # step that cannot run must not leave the sync's changes unseen by Moodle
        raise_problems(problems)
        return PurgeCachesConfig(cli, tuple(params.get("caches", ["muc"])))

    def command(self, config: PurgeCachesConfig) -> list[str]:
        return [
            *config.cli.php,
            str(config.cli.site / SCRIPT),
            *(f"--{cache}" for cache in config.caches),
        ]

    def plan(
        self, config: PurgeCachesConfig, run: RunFacts, ledger: Outcomes, services: object
    ) -> Plan:
        changes = ledger.database_changes()
        if changes == 0:
            return Plan(skip_reason="the run changed nothing in Moodle's database")
        who = f"as {config.cli.run_as}" if config.cli.run_as else f"as {running_as()}"
        action = Action(
            "run", " ".join(self.command(config)), f"{who}, in {config.cli.site}", data=config
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
        _, seconds = run_cli(config.cli, self.command(config), f"Moodle's {SCRIPT}")
        return f"purged in {seconds:.1f} s"
