"""testbed.node runs inside the containers: it must not need the host's libraries.

Checked twice: statically (every import statement in every module under testbed/node, including
imports inside functions) and dynamically (importing every module pulls none of them in
transitively, e.g. through a host-side testbed package).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "testbed" / "node"
FORBIDDEN = frozenset({"docker", "ansible_runner", "typer", "rich", "pydantic", "yaml"})
# Host-side halves of the package (they import the libraries above).
# Besides the node package: the stdlib-only modules testbed.pki needs (it runs in both places),
# and the host/node contracts (testbed.contracts: standard library only, checked below).
ALLOWED_TESTBED = (
    "testbed.node",
    "testbed.atomic",
    "testbed.errors",
    "testbed.pki",
    "testbed.contracts",
)


def node_modules() -> list[Path]:
    return sorted(NODE_DIR.rglob("*.py"))


def imported_names(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
            if node.module == "testbed":  # from testbed import plan
                names += [(node.lineno, f"testbed.{a.name}") for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append((node.lineno, node.args[0].value))
    return names


def test_there_are_modules_to_check() -> None:
    assert len(node_modules()) > 5


@pytest.mark.parametrize("path", node_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_host_side_imports(path: Path) -> None:
    offending = []
    for lineno, name in imported_names(path):
        top = name.split(".")[0]
        if top in FORBIDDEN:
            offending.append(f"line {lineno}: {name}")
        elif top == "testbed" and name != "testbed" and not name.startswith(ALLOWED_TESTBED):
            offending.append(f"line {lineno}: {name} (host-side part of the package)")
    assert not offending, f"{path.relative_to(ROOT)} imports: " + ", ".join(offending)


def test_importing_every_node_module_loads_no_host_library() -> None:
    script = f"""
import importlib, json, pkgutil, sys
import testbed.node
failed = {{}}
for info in pkgutil.walk_packages(testbed.node.__path__, "testbed.node."):
    if info.name.endswith("__main__"):
        continue  # runs the node
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed[info.name] = repr(exc)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {sorted(FORBIDDEN)!r})
host = sorted(m for m in sys.modules if m.startswith("testbed.")
              and not m.startswith({ALLOWED_TESTBED!r}))
print(json.dumps({{"failed": failed, "loaded": loaded, "host": host}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}, "node modules that do not import"
    assert result["loaded"] == [], "host-side libraries pulled in by testbed.node"
    assert result["host"] == [], "host-side testbed packages pulled in by testbed.node"


def test_the_checker_catches_offenders(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    import yaml\nfrom docker.errors import APIError\n"
        "from testbed import plan\nimport importlib\nimportlib.import_module('rich.console')\n"
    )
    names = [n for _, n in imported_names(bad)]
    assert {"yaml", "docker.errors", "testbed.plan", "rich.console"} <= set(names)


def test_the_contracts_import_only_the_standard_library() -> None:
    """testbed.contracts runs on both sides: nothing but the standard library and itself."""
    paths = sorted((ROOT / "testbed" / "contracts").rglob("*.py"))
    assert paths
    for path in paths:
        for lineno, name in imported_names(path):
            top = name.split(".")[0]
            assert (
                top in sys.stdlib_module_names
                or name.startswith("testbed.contracts")
                or (top == "__future__")
            ), f"{path.relative_to(ROOT)} line {lineno} imports {name}"
