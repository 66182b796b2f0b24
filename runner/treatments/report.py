"""save_report: keep each control file's report in the area."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from runner.core.errors import StepError
from runner.core.text import plural, printable
from runner.playbook.registry import REPORT_DEST
from runner.step.protocol import Action, Done, Plan
from runner.treatments.files import (
    Output,
    Target,
    WriteJob,
    apply_writes,
    choose,
    chunks_sha256,
    new_file_diff,
)

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.step.context import RunContext, StepScope


@dataclass(frozen=True)
class ReportConfig:
    target: Target
    format: str
    on_conflict: str


def _report_lines(run: RunContext, outcome: FileOutcome) -> Iterator[str]:
    """The per-line report the sync wrote (one line per data line)."""
    if outcome.report is None:
        return
    try:
        with open(outcome.report, encoding="utf-8") as handle:
            yield from handle
    except FileNotFoundError:
        raise StepError(
            f"the report lines of {run.display(outcome.path)} are gone"
            f" ({run.display(outcome.report)})"
        ) from None


def report_chunks(run: RunContext, outcome: FileOutcome, fmt: str) -> Iterator[bytes]:
    """The report's content, streamed: the same bytes for the same run record."""
    if fmt == "json":
        head = {
            "run_id": run.run_id,
            "playbook": run.playbook.name,
            "started": run.now.isoformat(),
            "control_file": {
                "command": outcome.command,
                "path": printable(str(outcome.path)),
                "size": outcome.size,
                "sha256": outcome.sha256,
                "encoding": outcome.encoding,
                "separator": outcome.separator,
            },
            "lines": {
                "total": outcome.lines,
                "changed": outcome.changed,
                "unchanged": outcome.unchanged,
                "failed": len(outcome.failed),
            },
            "error": outcome.error,
            "failed_lines": [
                {k: v for k, v in line.as_json(outcome.encoding).items() if k != "raw"}
                for line in outcome.failed
            ],
            "processed_courses": [{"id": i, "key": k} for i, k in sorted(outcome.courses.items())],
        }
        text = json.dumps(head, indent=1, ensure_ascii=False)
        yield (text[:-2] + ',\n "report": [').encode("utf-8")
        first = True
        for line in _report_lines(run, outcome):
            sep = "\n  " if first else ",\n  "
            first = False
            yield (sep + json.dumps(line.rstrip("\n"), ensure_ascii=False)).encode("utf-8")
        yield b"\n ]\n}\n"
        return
    yield (
        f"postsync report of run {run.run_id} ({run.playbook.name}), started"
        f" {run.now:%Y-%m-%d %H:%M:%S %z}\n"
        f"control file: {printable(str(outcome.path))} ({outcome.command}, {outcome.size} bytes,"
        f" sha256 {outcome.sha256})\n"
        f"result: {outcome.summary()}\n"
    ).encode()
    for line in _report_lines(run, outcome):
        yield line.encode("utf-8")


class SaveReport:
    """Save the report of each control file the run processed.

    The report holds the run, the control file (path, size, sha256), its line counts,
    then one line per data line: `line 5: add student U0009 in MATH101: failed: no
    such user (idnumber U0009)`.

    Parameters:
      dest (template, default "reports/{{ now | strftime('%Y%m%d-%H%M') }}_report_{{ file.name }}"):
        where the report goes, relative to the area (or under `roots:`), or an
        object `s3://bucket/key` under an `s3://bucket/prefix` of `roots:`.
      format (text | json, default text): plain text as above, or one JSON document
        with the counts, the failed lines and the report lines.
      on_conflict (suffix | fail | overwrite, default suffix): when a different file
        already has the name: insert .1, .2... before the extension, fail the step, or
        replace it.

    Example:
      - save_report: {}
      - save_report:
          dest: "reports/{{ run.id }}/{{ file.stem }}.json"
          format: json

    Guarantees: written atomically (a temporary file, synced, verified, then renamed);
    a file already holding the same report counts as done (a second run changes
    nothing); a different file is never silently replaced; nothing is written under
    --check.
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> ReportConfig:
        raw = scope.render(params.get("dest", REPORT_DEST), "dest")
        return ReportConfig(
            target=scope.confine_dest(raw, "dest"),
            format=params.get("format", "text"),
            on_conflict=params.get("on_conflict", "suffix"),
        )

    def plan(self, config: Sequence[tuple[FileOutcome, ReportConfig]], run: RunContext) -> Plan:
        if not config:
            return Plan(skip_reason="no control file was processed")
        actions: list[Action] = []
        errors: list[str] = []
        present = 0
        claimed: dict[Target, tuple[str, str]] = {}
        for outcome, cfg in config:
            shown = run.display(cfg.target)
            sha = chunks_sha256(report_chunks(run, outcome, cfg.format))
            try:
                placed = choose(
                    cfg.target,
                    sha,
                    cfg.on_conflict,
                    shown,
                    claimed=claimed,
                    owner=f"the report of {run.display(outcome.path)}",
                )
            except StepError as exc:
                errors.append(str(exc))
                continue
            except OSError as exc:  # a name too long for the filesystem...: this file only
                errors.append(f"{exc.filename or run.display(cfg.target)}: {exc.strerror}")
                continue
            if not isinstance(placed, Output):
                present += 1
                continue
            diff = None
            if run.diff:
                lines = b"".join(report_chunks(run, outcome, cfg.format)).decode("utf-8")
                diff = new_file_diff(run.display(placed.path), lines.splitlines())
            detail = f"report of {run.display(outcome.path)}, {cfg.format}"
            if placed.replace:
                detail += ", replaces a different file"
            actions.append(
                Action(
                    "write",
                    run.display(placed.path),
                    detail,
                    data=WriteJob(placed, partial(report_chunks, run, outcome, cfg.format)),
                    diff=diff,
                )
            )
        notes = [plural(len(actions), "report") if actions else "nothing to write"]
        if present:
            notes.append(f"{plural(present, 'report')} already saved")
        return Plan(actions, ", ".join(notes), errors=errors)

    def apply(self, actions: Sequence[Action], run: RunContext) -> Iterator[Done]:
        return apply_writes(actions, "report", run.written)
