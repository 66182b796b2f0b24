"""The treatment registry: the one list of post-treatment names (the schema uses it too)."""

from __future__ import annotations

from runner.treatments.base import Treatment
from runner.treatments.purge import PurgeOldFiles

TREATMENTS: dict[str, Treatment] = {
    "purge_old_files": PurgeOldFiles(),
}
