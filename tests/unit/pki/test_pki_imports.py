"""testbed.pki is imported inside containers: stdlib, cryptography and cbor2 only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PKI_DIR = ROOT / "testbed" / "pki"
ALLOWED_TOP = frozenset({"cryptography", "cbor2"}) | frozenset(sys.stdlib_module_names)
# testbed.atomic is stdlib only (the shared whole-file writer).
ALLOWED_TESTBED = ("testbed.atomic", "testbed.errors", "testbed.pki")


def imports(path: Path) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
            if node.module == "testbed":
                names += [(node.lineno, f"testbed.{a.name}") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append((node.lineno, "<relative import>"))
    return names


@pytest.mark.parametrize("path", sorted(PKI_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_pki_imports_only_stdlib_cryptography_cbor2(path: Path) -> None:
    bad = [
        f"line {n}: {name}"
        for n, name in imports(path)
        if not (
            name.split(".")[0] in ALLOWED_TOP
            or name == "__future__"
            or name.startswith(ALLOWED_TESTBED)
        )
    ]
    assert not bad, f"{path.name} imports " + ", ".join(bad)


def test_importing_pki_pulls_in_no_other_testbed_package() -> None:
    script = (
        "import json, sys, testbed.pki\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('testbed'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert [m for m in loaded if m != "testbed" and not m.startswith(ALLOWED_TESTBED)] == []
