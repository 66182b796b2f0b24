"""The treatments' implementations, by name: the names and order of the registry
(runner.playbook.registry), which the schema is built from; a test keeps them equal.
"""

from __future__ import annotations

from runner.treatments.archive import ArchiveControlFiles
from runner.treatments.base import Treatment
from runner.treatments.delete import DeleteControlFiles
from runner.treatments.events import MoodleEvents
from runner.treatments.groups import CleanEmptyGroups
from runner.treatments.moodle import PurgeMoodleCaches
from runner.treatments.notify import Notify
from runner.treatments.purge import PurgeOldFiles
from runner.treatments.report import SaveReport
from runner.treatments.retry import WriteRetryFile

TREATMENTS: dict[str, Treatment] = {
    "clean_empty_groups": CleanEmptyGroups(),
    "purge_moodle_caches": PurgeMoodleCaches(),
    "moodle_events": MoodleEvents(),
    "save_report": SaveReport(),
    "archive_control_files": ArchiveControlFiles(),
    "write_retry_file": WriteRetryFile(),
    "delete_control_files": DeleteControlFiles(),
    "purge_old_files": PurgeOldFiles(),
    "notify": Notify(),
}
