"""What users see: text lines as a run goes (`make_reporter` picks the JSON modes'
reporters instead, runner/cli/output_json.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import IO

from runner.cli.lines import LinesView, file_lines, sync_outcome
from runner.cli.output_json import JsonlReporter, JsonReporter, recap
from runner.cli.terminal import ERR, INFO, WARNING, Printer, ProgressLine, status_priority
from runner.core.errors import PostsyncError
from runner.core.text import plural, printable
from runner.engine.results import RunResult, StepResult
from runner.record.model import FileOutcome
from runner.step.context import Run
from runner.step.protocol import Done

PREVIEW_BANNER = "PREVIEW  --check: nothing is changed; the lines below are what the run would do"
#: lines printed in one write: a step of 30,000 items flushed line by line to a file or
#: a pipe costs more than the step's own work
_CHUNK = 2000


def item_text(done: Done) -> str:
    action = done.action
    detail, note = action.detail, done.note
    detail = f"{detail}, {note}" if detail and note else detail or note
    verb = action.verb.replace("_", " ")
    return f"{verb} {printable(action.target)}" + (f"  ({printable(detail)})" if detail else "")


def recap_line(r: Mapping[str, int]) -> str:
    """`RECAP ok=1 changed=6 skipped=0 failed=0 | lines: 35 ok, 5 failed`; `warning=N`
    only when a step ended so, which leaves the line of other runs as it always was."""
    warning = f" warning={r['warning']}" if r.get("warning") else ""
    return (
        f"RECAP ok={r['ok']} changed={r['changed']} skipped={r['skipped']}"
        f" failed={r['failed']}{warning} | lines: {r['lines_ok']} ok,"
        f" {r['lines_failed']} failed"
    )


def step_line(printer: Printer, status: str, name: str, detail: str) -> str:
    line = f"{printer.status(status)} {printable(name)}"
    return line + (f"  ({printable(detail)})" if detail else "")


class TextReporter(Printer):
    def __init__(
        self,
        out: IO[str] | None = None,
        *,
        diff: bool = False,
        verbosity: int = 0,
        lines: LinesView | None = None,
    ) -> None:
        super().__init__(out)
        self.diff = diff
        #: -1 (-q): only failures and the recap; 1 (-v): each control-file line too
        self.verbosity = verbosity
        #: what of each control file's lines is shown under it (-v, --failed)
        self.lines = lines or LinesView(every=verbosity > 0)
        self.progress_line = ProgressLine()
        self.run: Run | None = None

    def start(self, run: Run) -> None:
        self.run = run
        if run.facts.check:
            self.write(PREVIEW_BANNER)
        cleaned = run.ledger.cleaned
        if cleaned and self.verbosity >= 0:
            lines = [f"CLEANUP  {plural(len(cleaned), 'leftover')} of a killed run"]
            lines += [f"    remove {printable(t)}  ({d})" for t, d in cleaned]
            self.write("\n".join(lines))
        for problem in run.ledger.problems:
            self.write(f"{self.status('failed')} {printable(problem)}  (the run goes on)", ERR)

    def step_started(self, result: StepResult) -> None:
        self.progress_line.start()

    def item(self, result: StepResult, done: Done) -> None:
        pass

    def progress(self, result: StepResult, done: int, total: int, what: str) -> None:
        self.progress_line.update(result.name, done, total, what)

    def step_finished(self, result: StepResult) -> None:
        self.progress_line.clear()
        failed = result.status == "failed"
        # -q prints failed steps; with --failed, also the steps whose lines failed
        quiet = self.verbosity < 0
        if quiet and not failed and not (self.lines.failed and _lines_failed(result)):
            return
        detail = result.error or result.detail
        if result.ignored:
            detail += " (ignored)"
        priority = status_priority(result.status, result.ignored)
        head = step_line(self, result.status, result.name, detail)
        self._print(head, priority, self._step(result, priority, only_failed=quiet and not failed))

    def _step(
        self, result: StepResult, priority: int, *, only_failed: bool
    ) -> Iterable[tuple[str, int]]:
        """The step's items (at the step's priority), each control file's lines under
        its own `sync FILE` line."""
        for done in result.items:
            outcome = sync_outcome(done)
            if only_failed and (outcome is None or not outcome.failed):
                continue
            yield f"    {item_text(done)}", priority
            if self.diff and done.action.diff:
                yield done.action.diff.rstrip("\n"), priority
            if outcome is not None and self.lines.shown:
                yield from file_lines(outcome, self.lines, self._report(outcome))

    def _report(self, outcome: FileOutcome) -> str | None:
        """The file's report as users can open it: not a preview's (a temporary, gone
        when the preview ends)."""
        if self.run is None or self.run.facts.check or outcome.report is None:
            return None
        return self.run.facts.display(outcome.report)

    def _print(self, head: str, priority: int, lines: Iterable[tuple[str, int]]) -> None:
        """The step's line, then its lines, in few writes (each of one priority)."""
        chunk = [head]
        for text, level in lines:
            if level != priority or len(chunk) >= _CHUNK:
                self.write("\n".join(chunk), priority)
                chunk, priority = [], level
            chunk.append(text)
        if chunk:
            self.write("\n".join(chunk), priority)

    def finish(self, result: RunResult) -> None:
        line = recap_line(recap(result))
        if result.record_error:
            self.write(f"{self.status('failed')} run record  ({result.record_error})", ERR)
        if result.run.facts.check:
            line += "  (preview: nothing changed)"
        if result.interrupted:
            line += "  (interrupted)"
        code = result.exit_code
        self.write(line, INFO if code == 0 else WARNING if code == 2 else ERR)
        # what recovery needs: `postsync post RECORD` re-runs the post-treatments
        if result.record is not None:
            self.write(f"RECORD   {printable(str(result.record))}  (run {result.run.facts.run_id})")

    def abort(self, error: PostsyncError, check: bool) -> None:
        pass


def _lines_failed(result: StepResult) -> bool:
    return any((o := sync_outcome(d)) is not None and o.failed for d in result.items)


def make_reporter(
    kind: str, *, diff: bool = False, verbosity: int = 0, lines: LinesView | None = None
) -> TextReporter | JsonReporter:
    if kind == "json":
        return JsonReporter()
    if kind == "jsonl":
        return JsonlReporter()
    return TextReporter(diff=diff, verbosity=verbosity, lines=lines)
