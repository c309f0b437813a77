"""The package's shape: one concern per folder, no long module without a reason, and no mutable
module-level state that tasks could share.

Why a test: the layout (README "Layout", docs/architecture.md) is how a newcomer finds their way,
and it erodes one convenient line at a time. State that tasks share travels through ``host.data``
explicitly (deploy.py), never through a module's globals, which outlive a host's tasks and, under
the pyinfra API, a run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bars_receiver"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 300
REASON = "Why this module is long:"
# Shared by every concern: host scripts (scripts, shipping, shell), files written on the host, rendering and
# its cache, --diff, the CLI mode, the facts' cache, values tasks share through host.data.
HELPERS = {"__init__", "connection", "diffs", "fact_cache", "host_files", "render_cache", "run_mode", "scripts", "shared", "shell",
           "shipping", "snapshot", "templates"}
# Each task of tasks/ has a place of its name here (a folder, or a module when one is enough).
CONCERNS = {"inventory", "keys", "certificates", "application", "nginx", "firewall", "status",
            "ownership", "request_packs", "retire"}

# Module-level names bound to a mutable object, each with why it is not state.
ALLOWED_MUTABLE = {
    # PyYAML's constructor registry of our own loader class: filled at import, only read after.
    ("inventory/yaml12.py", "_CoreConstructor.yaml_constructors"),
}
MUTABLE_CALLS = {"dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "deque", "bytearray"}
MUTABLE_NODES = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def too_long_without_reason(source: str) -> bool:
    doc = ast.get_docstring(ast.parse(source)) or ""
    return len(source.splitlines()) > MAX_LINES and not any(line.startswith(REASON) for line in doc.splitlines())


def mutable_state(source: str) -> list[tuple[int, str]]:
    """(line, name) of each module-level binding to a mutable object, and each ``global``."""
    tree = ast.parse(source)
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets = [node.target]
        else:
            continue
        value = node.value
        call = getattr(value.func, "id", None) or getattr(value.func, "attr", None) if isinstance(value, ast.Call) else None
        if isinstance(value, MUTABLE_NODES) or call in MUTABLE_CALLS:
            found += [(node.lineno, ast.unparse(target)) for target in targets]
    found += [(node.lineno, f"global {', '.join(node.names)}") for node in ast.walk(tree) if isinstance(node, ast.Global)]
    return found


def test_one_folder_per_concern():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert (top - HELPERS) | folders == CONCERNS
    for folder in folders:
        init = PACKAGE / folder / "__init__.py"
        assert init.is_file(), f"bars_receiver/{folder}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"bars_receiver/{folder}/__init__.py does not say its concern"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_a_long_module_says_why(path):
    source = path.read_text()
    assert not too_long_without_reason(source), (
        f"bars_receiver/{_name(path)} has {len(source.splitlines())} lines (more than {MAX_LINES}) and its docstring "
        f"has no line starting {REASON!r}: split it by concern, or write the reason at its top")


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_mutable_module_state(path):
    found = [(line, name) for line, name in mutable_state(path.read_text())
             if (_name(path), name) not in ALLOWED_MUTABLE]
    assert not found, (
        f"bars_receiver/{_name(path)}: module-level mutable state {found}; make constants tuples, frozensets or "
        "MappingProxyType, and pass what tasks share through host.data")


def test_the_checks_find_what_they_look_for():
    """The scans above are not vacuous."""
    assert mutable_state("A = {}\nB = list()\nC: set = set()\nD = (1,)\nE = frozenset()\ndef f():\n    global D\n") == [
        (1, "A"), (2, "B"), (3, "C"), (7, "global D")]
    long = "x = 1\n" * (MAX_LINES + 1)
    assert too_long_without_reason(long)
    assert not too_long_without_reason(f'"""Doc.\n\n{REASON} one contract, read in one place.\n"""\n' + long)
    assert not too_long_without_reason("x = 1\n" * MAX_LINES)
