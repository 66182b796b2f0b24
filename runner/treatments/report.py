"""save_report: keep each control file's report in the area."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from runner.core.errors import StepError
from runner.core.text import SPREADSHEET_SUFFIXES, json_text, no_formula, plural, printable
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
    plan_writes,
    private,
)

if TYPE_CHECKING:
    from runner.record.model import FileOutcome
    from runner.step.facts import RunFacts
    from runner.step.ledger import Writes
    from runner.step.scope import StepScope


@dataclass(frozen=True)
class ReportConfig:
    target: Target
    format: str
    on_conflict: str

    @property
    def spreadsheet(self) -> bool:
        """A text report named .csv (the default name of a report of enrols.csv) or .tsv:
        a spreadsheet opens it, and evaluates what looks like a formula."""
        return self.format == "text" and str(self.target).lower().endswith(SPREADSHEET_SUFFIXES)


def _report_lines(run: RunFacts, outcome: FileOutcome) -> Iterator[str]:
    """The per-line report the sync wrote (one line per data line)."""
    if outcome.report is None:
        return
    try:
        # "\n" only ends a line: a CR is part of a value (escaped), never a new line
        with open(outcome.report, encoding="utf-8", newline="\n") as handle:
            yield from handle
    except FileNotFoundError:
        raise StepError(
            f"the report lines of {run.display(outcome.path)} are gone"
            f" ({run.display(outcome.report)})"
        ) from None


def report_chunks(run: RunFacts, outcome: FileOutcome, cfg: ReportConfig) -> Iterator[bytes]:
    """The report's content, streamed: the same bytes for the same run record.

    What comes from a control file (its values, in the report lines) is escaped as on
    the terminal: a control character, a line or paragraph separator is shown as
    `\\x1b`, `\\u2028`..., so no value starts a line of its own (`line 9: ...`); in a
    spreadsheet-shaped report a cell starting as a formula gets a `'`.
    """
    if cfg.format == "json":
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
                **({"same": outcome.same} if outcome.same else {}),  # a diffed snapshot's
            },
            "error": outcome.error,
            "failed_lines": [
                {k: v for k, v in line.as_json(outcome.encoding).items() if k != "raw"}
                for line in outcome.failed
            ],
            "processed_courses": [{"id": i, "key": k} for i, k in sorted(outcome.courses.items())],
        }
        text = json_text(head, indent=1)
        yield (text[:-2] + ',\n "report": [').encode("utf-8")
        first = True
        for line in _report_lines(run, outcome):
            sep = "\n  " if first else ",\n  "
            first = False
            yield (sep + json_text(line.rstrip("\n"))).encode("utf-8")
        yield b"\n ]\n}\n"
        return
    safe = (lambda text: no_formula(printable(text))) if cfg.spreadsheet else printable
    yield (
        f"postsync report of run {run.run_id} ({safe(run.playbook.name)}), started"
        f" {run.now:%Y-%m-%d %H:%M:%S %z}\n"
        f"control file: {safe(str(outcome.path))} ({outcome.command}, {outcome.size} bytes,"
        f" sha256 {outcome.sha256})\n"
        f"result: {safe(outcome.summary())}\n"
    ).encode()
    for line in _report_lines(run, outcome):
        yield (safe(line.rstrip("\n")) + "\n").encode("utf-8")


class SaveReport:
    """Save the report of each control file the run processed.

    The report holds the run, the control file (path, size, sha256), its line counts,
    then one line per data line: `line 5: add student U0009 in MATH101: failed: no
    such user (idnumber U0009)`.

    Parameters:
      dest (template, default
        "reports/{{ now | strftime('%Y%m%d-%H%M') }}_report_{{ file.stem }}.txt", .json
        for format json): where the report goes, relative to the area (or under
        `roots:`), or an object `s3://bucket/key` under an `s3://bucket/prefix` of
        `roots:`.
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

    What comes from a control file is escaped as on the terminal: a control character
    (ESC, CR, C1 controls such as NEL), a line or paragraph separator (U+2028, U+2029)
    is written as `\\x1b`, `\\r`, `\\x85`, `\\u2028`..., so a value never starts a
    line of its own; a JSON report escapes them as `\\u001b`, `\\u2028`... and stays
    one JSON document. A text report named .csv or .tsv (a `dest` such as
    `reports/{{ file.name }}`) is opened by spreadsheets: a cell of it that would
    start with = + - or @ (after a `,` `;` `|` or tab, blanks or a quote) gets a `'`
    before it, which makes it text (OWASP's advice against CSV injection):
    `U5;'=HYPERLINK(...)`.

    Guarantees: no more readable than its control file (0640 at most); written
    atomically (a temporary file, synced, verified, then renamed);
    a file already holding the same report counts as done (a second run changes
    nothing); a different file is never silently replaced; nothing is written under
    --check; a destination in another area (a directory holding a `.postsync/`) is
    refused before anything runs.
    """

    def configure(self, params: Mapping[str, Any], scope: StepScope) -> ReportConfig:
        form = params.get("format", "text")
        default = REPORT_DEST.removesuffix(".txt") + (".json" if form == "json" else ".txt")
        raw = scope.render(params.get("dest", default), "dest")
        return ReportConfig(
            target=scope.confine_dest(raw, "dest"),
            format=form,
            on_conflict=params.get("on_conflict", "suffix"),
        )

    def plan(
        self,
        config: Sequence[tuple[FileOutcome, ReportConfig]],
        run: RunFacts,
        ledger: Writes,
        services: object,
    ) -> Plan:
        if not config:
            return Plan(skip_reason="no control file was processed")
        actions: list[Action] = []
        errors: list[str] = []
        present = 0
        claimed: dict[Target, tuple[str, str]] = {}
        for outcome, cfg in config:
            shown = run.display(cfg.target)
            sha = chunks_sha256(report_chunks(run, outcome, cfg))
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
                lines = b"".join(report_chunks(run, outcome, cfg)).decode("utf-8")
                diff = new_file_diff(run.display(placed.path), lines.splitlines())
            detail = f"report of {run.display(outcome.path)}, {cfg.format}"
            if placed.replace:
                detail += ", replaces a different file"
            actions.append(
                Action(
                    "write",
                    run.display(placed.path),
                    detail,
                    data=WriteJob(
                        placed,
                        partial(report_chunks, run, outcome, cfg),
                        mode=private(outcome.mode),
                    ),
                    diff=diff,
                )
            )
        plan_writes(actions, run.check, ledger)
        notes = [plural(len(actions), "report") if actions else "nothing to write"]
        if present:
            notes.append(f"{plural(present, 'report')} already saved")
        return Plan(actions, ", ".join(notes), errors=errors)

    def apply(
        self, actions: Sequence[Action], run: RunFacts, ledger: Writes, services: object
    ) -> Iterator[Done]:
        return apply_writes(actions, "report", ledger)
