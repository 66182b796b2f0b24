"""The subcommands' help epilogs: examples, and what each command does."""

from runner.db.releases import NEWEST, RELEASES

RUN_EXAMPLES = """\
examples:
  postsync run playbooks/nightly.yml
  postsync run playbooks/nightly.yml --check --diff      # preview, change nothing
  postsync run nightly.yml -e stamp=20261124 -e @site-vars.yml
  postsync run nightly.yml --tags housekeeping --output json
  postsync run nightly.yml --lock-wait 300               # wait for a running feed
  postsync run nightly.yml --check --failed              # the lines that would fail, and why

exit codes: 0 ok, 2 control-file lines failed, 3 a step failed, 4 invalid playbook
(nothing changed), 5 usage error, 6 area locked by another run, 130 interrupted
(SIGINT), 143 terminated (SIGTERM), 1 internal error (traceback in a log file)."""


POST_EXAMPLES = """\
examples:
  postsync post /srv/feed/.postsync/runs/20261124T010002-3fa9c1.json
  postsync post RECORD --check --diff                   # preview
  postsync post RECORD --tags archive --playbook nightly.yml

Use it when a post-treatment failed (a full disk, a permission) once the cause is
fixed: what was already done counts as done, the rest is done now. The record is
updated with these steps. Exit codes as for `run`."""


SHOW_EXAMPLES = """\
examples:
  postsync show /srv/feed/.postsync/runs/20261124T010002-3fa9c1.json
  postsync show RECORD --failed                         # and each failed line, and why
  postsync show RECORD --failed-limit all               # every failed line

Prints what a saved run did: its playbook and times, its steps, each control file's
outcome. Reads the record only. Exit 4 for a file that is not a run record."""


RETRY_EXAMPLES = """\
examples:
  postsync retry /srv/feed/.postsync/runs/20261204T023000-3fa9c1.json --check
  postsync retry /srv/feed/.postsync/runs/20261204T023000-3fa9c1.json
  postsync retry RECORD --tags enrolments --playbook nightly.yml

Once the site is fixed (the missing user created, the course's idnumber corrected),
applies the failed lines of the run the record is of again, byte for byte, each through
the sync step that read it; --check shows exactly what the retry would do. A new run,
with its own record naming the retried run: the report of the retried lines and a retry
file of those still failing are written as the playbook says; the control files are
never archived or deleted again, no group is cleaned up, nothing purged. A line applied
by an earlier retry of the same run (or of a retry of it) is not applied again: retry
the same record, or the retry's record, as often as needed. Exit codes as for `run`."""


UNDO_EXAMPLES = """\
examples:
  postsync undo /srv/feed/.postsync/runs/20261204T023000-3fa9c1.json --check
  postsync undo /srv/feed/.postsync/runs/20261204T023000-3fa9c1.json
  postsync run /srv/feed/.postsync/undo/20261204T023000-3fa9c1/undo.yml --check
  postsync run /srv/feed/.postsync/undo/20261204T023000-3fa9c1/undo.yml
  postsync undo RECORD --into /root/undo-3fa9c1 --playbook nightly.yml

Reads the run's change journal and writes, into AREA/.postsync/undo/RUN_ID (or DIR),
control files in the sync commands' formats that reverse it, newest change first:
groups and groupings the group cleanup deleted made again, group memberships removed
or added back, enrolments and roles as they were (status and dates included), cohort
members given back or removed, cohorts the run made deleted, users the run created
suspended (not deleted), users' updated columns restored (never a password); and
undo.yml, a playbook applying them in order to the run's database. What cannot be
reversed (a deleted user, a group the run created, what the journal does not keep)
is a note on the line that made it, printed and in NOTES.txt. The names the files
use (course shortname, username, group name, cohort idnumber) are read from the
database now. --check prints the same and writes nothing. Never overwrites a file.
Apply undo.yml while the feed's own runs are stopped: it locks its own directory, not
the feed's area. Exit codes: 0 all reversed, 2 some changes noted as not reversed,
3 the files cannot be written, 4 the record or its journal is invalid (file, line)."""


VALIDATE_EXAMPLES = """\
examples:
  postsync validate playbooks/nightly.yml
  postsync validate playbooks/*.yml -e stamp=x

Checks YAML syntax, duplicate keys, the JSON Schema and every template's syntax and
variable names. Prints FILE:LINE:COL: PATH: message for each problem; exit 4 if any."""


LIST_EXAMPLES = """\
examples:
  postsync list-tasks playbooks/nightly.yml
  postsync list-tasks playbooks/nightly.yml --tags housekeeping"""


SCHEMA_EXAMPLES = """\
examples:
  postsync schema > playbook.schema.json
  postsync schema record
  postsync schema output    # --output json documents and --output jsonl events
  postsync schema journal   # a line of a run's change journal (RUN_ID/NNN_NAME.journal)"""


DB_EXAMPLES = f"""\
examples:
  postsync db init sqlite:///moodle.db --demo
  postsync db init sqlite:///moodle42.db --moodle 4.2
  postsync db init postgresql+psycopg://postsync@localhost/moodle_test --prefix mdl_

Creates the Moodle tables postsync uses (users, courses, categories, contexts, roles,
enrolments, groups, cohorts, profile fields, preferences, sessions, settings, cache
flags, calendar events, course modules) as the release given by --moodle defines them
({", ".join(RELEASES)}; default {NEWEST}), with a fresh install's rows (standard roles,
system context, site course, the release in config `version`). For the embedded
default, demos and tests: it refuses to touch a database where any of these tables
exists."""


DEMO_EXAMPLES = """\
examples:
  postsync demo
  postsync demo /tmp/postsync-demo

Builds DIR (default ./postsync-demo): a seeded SQLite database, an area holding five
control files (users, cohorts, groups, enrolments, group members; a few lines fail on
purpose), a playbook with every post-treatment, and runs it. A DIR from an earlier
demo is rebuilt; any other non-empty DIR is refused."""


STATUS_EXAMPLES = """\
examples:
  postsync status /srv/moodledata/sync
  postsync status /srv/moodledata/sync --max-age-hours 2 --output json

One line per playbook that ran on the area: its last run's id, when it finished, how
long ago, its exit code, failed lines and steps. Exit codes: 0 every last run completed
(exit 0 or 2) within --max-age-hours, 3 a last run failed (a step, the lock, an
interruption...), 7 a last run is stale or the area has none recorded."""
