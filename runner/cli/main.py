"""The command line: a thin argparse front dispatching to one function per subcommand,
and the one place mapping errors to exit codes."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from runner.cli.commands import COMMANDS
from runner.cli.parser import build_parser
from runner.core.errors import Exit, PlaybookError, PostsyncError, Terminated, interruption_exit
from runner.core.interpreter import released
from runner.core.secrets import redact


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def crash_dirs() -> list[Path]:
    """Where a crash log goes, first writable one: systemd's LogsDirectory= and
    StateDirectory= (a unit with ProtectHome=yes cannot write the home), the XDG state
    directory, the temporary directory."""
    found = []
    for name in ("LOGS_DIRECTORY", "STATE_DIRECTORY"):  # systemd: paths joined by ':'
        found += [Path(p) for p in os.environ.get(name, "").split(":") if p]
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return [*found, Path(base) / "postsync", Path(tempfile.gettempdir())]


def _crash_log() -> Path:
    for directory in crash_dirs():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"postsync-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(redact(traceback.format_exc()))
            return path
        except OSError:
            continue
    return Path("-")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return int(Exit.USAGE)
        return COMMANDS[args.command](args)
    except PostsyncError as exc:
        if isinstance(exc, PlaybookError):
            print(redact(str(exc)), file=sys.stderr)
            count = len(exc.problems)
            print(
                f"postsync: invalid, nothing was changed ({count} problem{'s' * (count > 1)})",
                file=sys.stderr,
            )
        else:
            print(redact(f"postsync: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt as exc:
        code = interruption_exit(exc)
        print(
            "postsync: terminated" if code == Exit.TERMINATED else "postsync: interrupted",
            file=sys.stderr,
        )
        return int(code)
    except BrokenPipeError:
        # stdout's reader went away (`postsync ... | head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.INTERNAL)
    except Exception as exc:
        log = _crash_log()
        print(
            redact(
                f"postsync: internal error: {type(exc).__name__}: {exc} (traceback in {log};"
                " please report it)"
            ),
            file=sys.stderr,
        )
        return int(Exit.INTERNAL)
    finally:
        signal.signal(signal.SIGTERM, previous)
        released()
