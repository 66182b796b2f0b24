"""The README's reference sections, generated from the code's own documentation.

`python -m tests.readme` rewrites them in README.md; tests/test_schema.py checks that
README.md holds exactly what this generates.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from runner.sync import SYNC_COMMANDS
from runner.treatments import TREATMENTS

README = Path(__file__).resolve().parent.parent / "README.md"
INTRO = (
    "Each entry is the treatment's own documentation (a test keeps the two equal), in the\n"
    "order of a nightly playbook. Every treatment plans first (reads only), then applies;\n"
    "`--check` prints the plan's items, the run prints the same items as it applies them.\n"
)


def block(name: str, obj: object) -> str:
    doc = inspect.cleandoc(type(obj).__doc__ or "")
    return f"### {name}\n\n```text\n{doc}\n```\n"


def treatment_reference() -> str:
    blocks = "\n".join(block(name, t) for name, t in TREATMENTS.items())
    return f"## Treatment reference\n\n{INTRO}\n{blocks}\n"


def _replace_section(text: str, heading: str, body: str) -> str:
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## )", re.M | re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {heading!r} section")
    return pattern.sub(lambda _m: body, text, count=1)


def _replace_block(text: str, name: str, obj: object) -> str:
    pattern = re.compile(rf"^### {re.escape(name)}\n\n```text\n.*?\n```\n", re.M | re.S)
    return pattern.sub(lambda _m: block(name, obj), text, count=1)


def render(text: str) -> str:
    text = _replace_section(text, "## Treatment reference", treatment_reference())
    for name, command in SYNC_COMMANDS.items():
        text = _replace_block(text, name, command)
    return text


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"updated {README}")
