"""moodle_events: the run's change journal replayed through Moodle's own event API."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.errors import PlaybookError, StepError
from runner.core.text import plural
from runner.step.facts import RunFacts
from runner.step.ledger import Outcomes
from runner.step.protocol import Action, Done, Plan
from runner.step.scope import StepScope
from runner.treatments.events_journal import (
    journal_parts,
    read_progress,
    said_progress,
    tally,
    write_feed,
    write_progress,
)
from runner.treatments.moodle_cli import (
    MoodleCli,
    ScriptFailed,
    configure_cli,
    raise_problems,
    run_cli,
    running_as,
    switched_user,
)

#: the PHP script shipped with postsync (package data)
SCRIPT = Path(__file__).resolve().parent / "php" / "moodle_events.php"
LABEL = "postsync's moodle_events.php"


@dataclass(frozen=True)
class EventsConfig:
    cli: MoodleCli
    batch_size: int
    #: the acting user (an id or a username); None: the site's main administrator
    user: str | None


class MoodleEvents:
    """Replay the run's change journal through Moodle's own event API, so that Moodle
    logs what the run changed and its observers run (enrol_meta, enrol_cohort, any
    plugin listening to enrolment, group, cohort or user events).

    postsync writes Moodle's tables directly: Moodle logs nothing of it and runs none
    of its observers. This step runs a PHP script shipped with postsync from the
    site's directory, with the site's own config.php; for each line of the run's
    journal (each part, RUN_ID/NNN_NAME.journal) it triggers Moodle's event
    (\\core\\event\\user_enrolment_created, role_assigned, group_member_added,
    cohort_member_added, user_deleted...) with what Moodle's own API gives it: the
    context, objectid, relateduserid, courseid, `other` and record snapshots, as the
    acting user; a user created with a password, or whose password the line changed,
    gets \\core\\event\\user_password_updated first, as Moodle's user_create_user and
    user_update_user trigger it. A row the journal names without its id (made by a
    set-based insert) is found by its natural key; a row gone since is told from what
    the journal holds, and the step's detail says so. A last unenrolment's roles below the course
    (activities, blocks) get role_unassigned, its course access time (course_left) no
    event, as in Moodle. What a deletion takes with it (the
    journal's lines marked `with`, before the deletion's own) is replayed as Moodle's
    deletion triggers it, before user_deleted: each enrolment of a plugin enabled on
    the site as unenrol_user unenrols it (the roles in the course and, at the course's
    last enrolment, its group memberships, then user_enrolment_deleted with
    `lastenrol`), then the roles left; an enrolment of a disabled plugin, a membership
    of a group of another course and cohort memberships (a user's, a deleted cohort's)
    trigger none, as in Moodle (the preview counts every enrolment's event: the step's
    detail says when the site's plugins made fewer). It is skipped when the journal holds
    nothing left to replay. The preview counts the events per name and runs nothing.
    `postsync post RECORD` replays a saved run's journal: a playbook holding only this
    step replays on its own schedule.

    The events come after the changes and are dated when they are replayed; Moodle's
    observers run then (enrol_meta copies the enrolments, enrol_cohort enrols a
    cohort's new members), with the database as it is then. It recovers nothing that
    Moodle's API would have kept and postsync's writes did not (a grade history).

    Parameters:
      moodle_dir (string, required): the Moodle site's directory, as
        purge_moodle_caches's (the one holding config.php, or Moodle 5.1's public/).
      php (list of strings, default ["php"]): the PHP interpreter, and its options.
      run_as (string, optional): the user to run the script as (e.g. www-data), as
        purge_moodle_caches's: never root.
      timeout_seconds (integer >= 1, or a template rendering to one; default 600): the
        step fails when the script takes longer (stopped; its progress kept).
      environment (mapping, default {}): variables set for the script (never printed).
      userid (integer >= 1 or string, optional): the acting user of the events (whom
        Moodle's log shows as having made the changes): an id or a username; default:
        the site's main administrator.
      batch_size (integer >= 1, default 500): journal lines replayed per transaction.

    Example:
      - name: tell Moodle what the run changed
        moodle_events:
          moodle_dir: /var/www/moodle
          run_as: www-data

    Guarantees: the journal is read whole and checked before any event is triggered
    (a line that is not a journal line, a part that is a symbolic link, a FIFO or a
    directory fail the step naming the part and its line, nothing replayed); each
    batch's events are triggered in one of Moodle's transactions with the replay's
    progress (config_plugins, plugin postsync_events, named after the run id), so that
    a replay stopped at any point (killed, timed out) and run again never triggers a
    change's event twice: it goes on after the last batch committed. Moodle writes its
    log rows once a batch commits, before the next: a replay killed between the two
    may miss that batch's log rows, never logs one twice. The progress is also kept
    beside the journal (RUN_ID/events.progress), which the preview reads. The script
    runs as purge_moodle_caches runs Moodle's (never as root, no secret of postsync's
    in its environment or on its command line, bounded in time, its output's end in
    the step's error); it reads a copy of the lines still to replay, in a private
    directory removed after it.
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> EventsConfig:
        cli, problems = configure_cli(params, scope)
        raise_problems(problems)
        user = params.get("userid")
        if user is not None:
            user = str(scope.render(user, "userid")).strip()
            if not user:
                raise PlaybookError([scope.error("renders to an empty user", "userid")])
        return EventsConfig(
            cli,
            scope.integer(params.get("batch_size", 500), "batch_size", 1),
            user,
        )

    def plan(self, config: EventsConfig, run: RunFacts, ledger: Outcomes, services: object) -> Plan:
        where = journal_dir(run, ledger)
        parts = [(path, run.display(path)) for path in journal_parts(where)]
        done = read_progress(where)
        counted = tally(parts, done)
        before = f", {plural(counted.done, 'line')} replayed before" if counted.done else ""
        if not counted.total:
            if counted.done:
                return Plan(skip_reason=f"the run's journal is replayed already{before}")
            return Plan(skip_reason="the run's journal holds no change to replay")
        who = f"as {config.cli.run_as or running_as()}"
        actor = f"userid {config.user}" if config.user else "the site's main administrator"
        detail = f"{who}, in {config.cli.site}, acting user {actor}"
        actions = [
            Action(
                "trigger",
                f"\\core\\event\\{name}",
                plural(count, "event"),
                data=(config, where, parts),
            )
            for name, count in sorted(counted.events.items())
        ]
        silent = (
            f", {plural(counted.silent, 'line')} with no event of Moodle's"
            if counted.silent
            else ""
        )
        summary = (
            f"{plural(counted.total, 'event')} from {plural(counted.parts, 'journal part')}"
            f"{before}{silent} ({detail})"
        )
        return Plan(actions, summary)

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: object, services: object
    ) -> Iterator[Done]:
        if not actions:
            return
        config, where, parts = actions[0].data
        summary = self._replay(config, run, where, parts)
        # PHP writes an empty mapping as []
        counts, gone, skipped = (summary.get(name) or {} for name in ("events", "gone", "skipped"))
        for action in actions:
            name = action.target.rsplit("\\", 1)[-1]
            notes = []
            if counts.get(name, 0) != int(action.detail.split()[0]):
                notes.append(f"{counts.get(name, 0)} triggered")
            if gone.get(name):
                notes.append(f"{gone[name]} without their row (gone since: told from the journal)")
            if skipped.get(name):
                notes.append(f"{skipped[name]} not replayed (see the script's notes)")
            yield Done(action, "; ".join(notes))

    def _replay(
        self, config: EventsConfig, run: RunFacts, where: Path, parts: list[tuple[Path, str]]
    ) -> dict[str, Any]:
        done = read_progress(where)
        private = Path(tempfile.mkdtemp(prefix="postsync-events-"))
        try:
            feed = private / "feed.jsonl"
            with open(feed, "w", encoding="utf-8") as out:
                write_feed(parts, done, out)
            script = private / SCRIPT.name
            shutil.copyfile(SCRIPT, script)
            user = switched_user(config.cli)
            if user is not None:  # the script's user reads them; nobody else
                for path in (private, feed, script):
                    os.chown(path, user.pw_uid, user.pw_gid)
            command = [
                *config.cli.php,
                str(script),
                f"--config={config.cli.site / 'config.php'}",
                f"--feed={feed}",
                f"--run={run.run_id}",
                f"--batch={config.batch_size}",
                *([f"--user={config.user}"] if config.user else []),
            ]
            try:
                said, _ = run_cli(config.cli, command, LABEL)
            except ScriptFailed as exc:
                kept = _keep(where, done, said_progress(exc.said))
                raise StepError(f"{exc} ({kept})") from None
            _keep(where, done, said_progress(said))
        finally:
            shutil.rmtree(private, ignore_errors=True)
        for text in reversed(said.splitlines()):
            if text.startswith("summary "):
                result: dict[str, Any] = json.loads(text[len("summary ") :])
                return result
        raise StepError(f"{LABEL} ended without its summary")


def _keep(where: Path, done: dict[str, int], said: dict[str, int]) -> str:
    """The progress the script printed, kept beside the journal: what it says."""
    merged = dict(done)
    for part, seq in said.items():
        merged[part] = max(merged.get(part, 0), seq)
    if merged != done:
        write_progress(where, merged)
    moved = sum(merged.values()) - sum(done.values())
    return f"progress kept: {plural(moved, 'line')} replayed in this attempt"


def journal_dir(run: RunFacts, ledger: Outcomes) -> Path:
    """Where the run's journal is: beside its control files' reports (a preview's
    private directory, or the run's directory: RUN_ID, the record's for `post`)."""
    for outcome in ledger.files:
        if outcome.report is not None:
            return outcome.report.parent
    return run.run_dir
