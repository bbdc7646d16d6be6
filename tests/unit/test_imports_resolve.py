"""Every name that tests, benchmarks and scripts import from testbed exists.

Imports inside functions run only on the path that needs them (a teardown's retry, a bench's
rare branch), so a module split or rename can leave one pointing at a name that moved and
nothing notices until that path runs. This walks every ``from testbed... import NAME`` in
tests/, bench/ and scripts/, wherever it sits, and resolves it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = ("tests", "bench", "scripts")


def imports_from_testbed(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every ``from testbed[.x] import name`` in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.level == 0
        and node.module is not None
        and (node.module == "testbed" or node.module.startswith("testbed."))
        for alias in node.names
        if alias.name != "*"
    ]


def unresolved(module: str, name: str) -> str | None:
    try:
        imported = importlib.import_module(module)
    except ImportError as exc:
        return f"module {module} does not import: {exc}"
    if hasattr(imported, name):
        return None
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return f"{module} has no {name}"
    return None


def files() -> list[Path]:
    return sorted(
        p for tree in TREES if (ROOT / tree).is_dir() for p in (ROOT / tree).rglob("*.py")
    )


def test_every_testbed_import_resolves() -> None:
    found = [(path, *imp) for path in files() for imp in imports_from_testbed(path)]
    assert len(found) > 100
    broken = [
        f"{path.relative_to(ROOT)}:{line}: {problem}"
        for path, line, module, name in found
        if (problem := unresolved(module, name))
    ]
    assert not broken, "imports that no longer resolve:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("source", "resolves"),
    [
        ("def f():\n    from testbed.engines.docker_networks import detach_endpoints\n", True),
        ("def f():\n    from testbed.engines.docker import no_such_name\n", False),
        ("from testbed import no_such_module\n", False),
    ],
)
def test_the_check_catches_a_name_that_moved(tmp_path: Path, source: str, resolves: bool) -> None:
    path = tmp_path / "case.py"
    path.write_text(source)
    ((_, module, name),) = imports_from_testbed(path)
    assert (unresolved(module, name) is None) is resolves
