"""The package's shape: one folder per concern, imports only downwards, no import circle.

Every import counts, wherever it is written: at the top, inside a function, or under
`if TYPE_CHECKING:` (a circle of type-only imports is still a circle to read through).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "runner"

#: each folder of runner/, and the folders it may import from (always downwards)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "storage": {"core"},
    "db": {"core"},
    "playbook": {"core"},
    "record": {"core", "storage"},
    "step": {"core", "storage", "db", "playbook", "record"},
    "sync": {"core", "storage", "db", "playbook", "record", "step"},
    "treatments": {"core", "storage", "db", "playbook", "record", "step"},
    "engine": {"core", "storage", "db", "playbook", "record", "step", "sync", "treatments"},
    # `postsync undo`: a run's journal as control files of the sync commands' formats
    "undo": {"core", "storage", "db", "playbook", "record", "step", "sync", "engine"},
    "cli": {
        "core",
        "storage",
        "db",
        "playbook",
        "record",
        "step",
        "engine",
        "undo",
        # `schema`, `db init` and the demo
        "sync",
        "treatments",
    },
}
#: the registry the schema is built from imports no run-time module
REGISTRY = {"runner.playbook.registry", "runner.playbook.schema"}
#: the one module that imports the sync commands' packages (runner/sync/<name>/): every
#: other module of runner/sync/ is the core they share
SYNC_REGISTRY = "runner.sync.commands"
MAX_LINES = 400


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module under `package`."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's own modules that module `name` imports, anywhere in it."""
    known = set(known)
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in known:  # `from runner.sync import step`
                    out.add(target)
                elif source in known:
                    out.add(source)
    out.discard(name)
    return out


def graph(package: Path) -> dict[str, set[str]]:
    found = modules(package)
    return {name: imports(name, path, found) for name, path in found.items()}


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module
    (Tarjan's algorithm), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def wrong_directions(edges: Mapping[str, set[str]]) -> list[str]:
    wrong = []
    for source, targets in sorted(edges.items()):
        own = layer(source)
        for target in sorted(targets):
            other = layer(target)
            if own is None or other is None or own == other:
                continue
            if other not in ALLOWED[own]:
                wrong.append(f"{source} imports {target} ({own} may not use {other})")
    return wrong


def sync_commands(package: Path) -> set[str]:
    """The sync commands' packages: the folders of runner/sync/."""
    return {
        f"{package.name}.sync.{p.name}"
        for p in (package / "sync").iterdir()
        if (p / "__init__.py").is_file()
    }


def command_of(module: str, commands: Iterable[str]) -> str | None:
    return next((c for c in commands if module == c or module.startswith(f"{c}.")), None)


def crossed_commands(edges: Mapping[str, set[str]], commands: set[str]) -> list[str]:
    """A command's package imports only the core and the layers below, never another
    command's; the rest of the package reaches a command only through the registry."""
    wrong = []
    for source, targets in sorted(edges.items()):
        own = command_of(source, commands)
        for target in sorted(targets):
            other = command_of(target, commands)
            if other is None or other == own:
                continue
            if own is not None:
                wrong.append(f"{source} imports {target} ({own} may not use {other})")
            elif source != SYNC_REGISTRY:
                wrong.append(f"{source} imports {target} (only {SYNC_REGISTRY} uses {other})")
    return wrong


def test_no_import_circle() -> None:
    assert cycles(graph(PACKAGE)) == []


def test_imports_only_go_downwards() -> None:
    assert wrong_directions(graph(PACKAGE)) == []


def test_every_module_is_in_a_layer() -> None:
    loose = [m for m in modules(PACKAGE) if layer(m) is None]
    assert loose == ["runner", "runner.__main__"]
    assert set(ALLOWED) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def test_the_registry_imports_no_run_time_module() -> None:
    edges = graph(PACKAGE)
    seen: set[str] = set()
    todo = list(REGISTRY)
    while todo:  # everything loading the schema loads, transitively
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(edges[module])
    assert {layer(m) for m in seen} <= {"core", "playbook"}, sorted(seen)


def test_sync_and_treatments_meet_only_in_the_record() -> None:
    edges = graph(PACKAGE)
    for source, targets in edges.items():
        if layer(source) in ("sync", "treatments"):
            other = "treatments" if layer(source) == "sync" else "sync"
            assert not [t for t in targets if layer(t) == other], source


def test_sync_commands_use_only_the_core() -> None:
    assert crossed_commands(graph(PACKAGE), sync_commands(PACKAGE)) == []


def test_each_sync_command_is_its_own_package() -> None:
    from runner.sync import SYNC_COMMANDS

    assert sync_commands(PACKAGE) == {f"runner.sync.{name}" for name in SYNC_COMMANDS}
    for name, command in SYNC_COMMANDS.items():
        assert type(command).__module__ == f"runner.sync.{name}.command", name


@pytest.mark.parametrize("folder", ["runner", "bench"])
def test_no_module_over_the_limit(folder: str) -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# The checks themselves, on packages made for them: they can fail.


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "runner"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_circle_is_found_even_through_type_only_and_local_imports(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "sync/__init__.py": "",
            "sync/a.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from runner.sync.b import B\n",
            "sync/b.py": "def f():\n    from . import c\n",
            "sync/c.py": "import runner.sync.a\n",
            "sync/d.py": "from runner.sync import a\n",
        },
    )
    assert cycles(graph(root)) == [["runner.sync.a", "runner.sync.b", "runner.sync.c"]]


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "db/__init__.py": "",
            "db/raw.py": "from runner.engine.execute import run\n",
            "engine/__init__.py": "",
            "engine/execute.py": "from runner.db import raw\n",
            "sync/__init__.py": "",
            "sync/x.py": "from runner.treatments import TREATMENTS\n",
            "treatments/__init__.py": "",
        },
    )
    assert wrong_directions(graph(root)) == [
        "runner.db.raw imports runner.engine.execute (db may not use engine)",
        "runner.sync.x imports runner.treatments (sync may not use treatments)",
    ]


def test_a_command_using_another_or_the_core_using_a_command_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "sync/__init__.py": "",
            "sync/base.py": "",
            "sync/commands.py": "from runner.sync.a import A\nfrom runner.sync.b import B\n",
            "sync/step.py": "def f():\n    from runner.sync.b.state import S\n",
            "sync/a/__init__.py": "from .command import A\n",
            "sync/a/command.py": "from runner.sync import base\nfrom ..b import state\n",
            "sync/b/__init__.py": "from runner.sync.b.command import B\n",
            "sync/b/command.py": "from runner.sync.b.state import S\n",
            "sync/b/state.py": "from runner.sync.base import *\n",
        },
    )
    assert sync_commands(root) == {"runner.sync.a", "runner.sync.b"}
    assert crossed_commands(graph(root), sync_commands(root)) == [
        "runner.sync.a.command imports runner.sync.b.state (runner.sync.a may not use "
        "runner.sync.b)",
        "runner.sync.step imports runner.sync.b.state (only runner.sync.commands uses "
        "runner.sync.b)",
    ]


def test_the_readme_code_map_is_the_tree() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Code map") :]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    mapped = re.findall(r"^\| `runner/([a-z_]+)/` \|", section, re.M)
    assert mapped == list(ALLOWED), "the code map lists the folders in flow order"
    for path in re.findall(r"`(runner/[a-z_/]+\.py)`", section):
        assert (ROOT / path).is_file(), path


# A run's state in three parts (runner.step.context): steps get the parts they use.

STATE_MODULES = ("facts", "ledger", "services")
#: what a step's `ledger` and `services` parameters may be: a protocol of those modules
#: (what it reads, what it may add), the concrete type, or `object` (none of them)
STEP_PARTS = {
    "ledger": {
        "Outcomes",
        "Writes",
        "Archives",
        "Stored",
        "RetryFiles",
        "GroupDeletions",
        "SyncOutcomes",
    },
    "services": {"Database", "ReportFiles", "ObjectStore", "SyncServices"},
}


def _imported_names(path: Path) -> set[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    return {
        (node.module or "", alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_steps_get_the_run_in_parts_never_whole() -> None:
    """Only the engine and the CLI hold a whole `Run`; a step gets its facts, ledger
    and services as separate parameters."""
    holders = [
        name
        for name, path in modules(PACKAGE).items()
        if ("runner.step.context", "Run") in _imported_names(path)
    ]
    assert holders and {layer(m) for m in holders} <= {"engine", "cli"}, holders


def test_the_run_state_types_name_no_any_and_facts_are_frozen() -> None:
    from runner.step.facts import RunFacts

    for name in STATE_MODULES:
        imported = _imported_names(PACKAGE / "step" / f"{name}.py")
        assert ("typing", "Any") not in imported, name
    assert RunFacts.__dataclass_params__.frozen  # type: ignore[attr-defined]


def ledger_writes(source: str) -> list[str]:
    """Assignments into a ledger (`ledger.x = ...`, `run.ledger.x += ...`) and uses of
    its private parts (`ledger._files`): a ledger changes through its methods only."""

    def is_ledger(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id == "ledger") or (
            isinstance(node, ast.Attribute) and node.attr == "ledger"
        )

    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and is_ledger(node.value)
            and (node.attr.startswith("_") or isinstance(node.ctx, ast.Store))
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_a_ledger_changes_only_through_its_methods() -> None:
    wrong = {
        name: found
        for name, path in modules(PACKAGE).items()
        if name != "runner.step.ledger" and (found := ledger_writes(path.read_text()))
    }
    assert wrong == {}


def test_a_ledger_write_is_found() -> None:
    assert ledger_writes("ledger.files = []\nrun.ledger._written.add(p)\nledger.add(x)\n") == [
        "line 1: ledger.files",
        "line 2: run.ledger._written",
    ]


def test_each_step_signature_names_what_it_reads_and_adds() -> None:
    """plan/apply of every treatment, and the sync step: (…, run: RunFacts, ledger:
    <a ledger protocol or object>, services: <a services protocol or object>)."""
    import inspect

    from runner.sync import retried
    from runner.sync import step as sync_step
    from runner.treatments import TREATMENTS

    functions = {"sync.run": sync_step.run, "sync.retried.run": retried.run}
    for kind, treatment in TREATMENTS.items():
        functions[f"{kind}.plan"] = type(treatment).plan
        functions[f"{kind}.apply"] = type(treatment).apply
    for where, function in functions.items():
        params = inspect.signature(function).parameters
        assert params["run"].annotation == "RunFacts", where
        for part, allowed in STEP_PARTS.items():
            assert params[part].annotation in allowed | {"object"}, (where, part)
