"""The collection's documentation renders with ansible-doc and agrees with the argument specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.phases.conftest import COLLECTIONS

ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"


def ansible_doc(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(ANSIBLE_DOC), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize("name", ["testbed.iot.thing", "testbed.iot.trust_center"])
def test_module_doc_renders(name: str) -> None:
    proc = ansible_doc(name)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
    text = proc.stdout
    for section in ("OPTIONS", "EXAMPLES", "RETURN VALUES", "ATTRIBUTES"):
        assert section in text, section
    assert "check_mode" in text and "diff_mode" in text


@pytest.mark.parametrize("name", ["device_record", "firmware_releases"])
def test_lookup_doc_renders(name: str) -> None:
    proc = ansible_doc("-t", "lookup", f"testbed.iot.{name}")
    assert proc.returncode == 0, proc.stderr
    assert "testbed_run_dir" in proc.stdout


def test_collection_lists_its_modules() -> None:
    proc = ansible_doc("-l", "testbed.iot")
    assert proc.returncode == 0, proc.stderr
    assert "testbed.iot.thing" in proc.stdout and "testbed.iot.trust_center" in proc.stdout


def _documented(name: str) -> dict[str, Any]:
    proc = ansible_doc("--json", f"testbed.iot.{name}")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)[f"testbed.iot.{name}"]["doc"]
    return doc


def _check_spec(documented: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    assert set(documented) == set(spec), where
    for option, arg in spec.items():
        doc = documented[option]
        assert doc.get("type", "str") == arg.get("type", "str"), f"{where}.{option} type"
        assert doc.get("choices") == arg.get("choices"), f"{where}.{option} choices"
        assert doc.get("default") == arg.get("default"), f"{where}.{option} default"
        assert bool(doc.get("required")) == bool(arg.get("required")), f"{where}.{option}"
        if "options" in arg:
            _check_spec(doc["suboptions"], arg["options"], f"{where}.{option}")


def test_thing_doc_matches_argument_spec(thing_module: ModuleType) -> None:
    _check_spec(_documented("thing")["options"], thing_module.ARGUMENT_SPEC, "thing")


def test_trust_center_doc_matches_argument_spec(tc_module: ModuleType) -> None:
    _check_spec(_documented("trust_center")["options"], tc_module.ARGUMENT_SPEC, "trust_center")


def test_collection_is_typed_and_lint_clean() -> None:
    """`make lint` covers testbed/, tests/ and bench/; the collection's Python is checked here
    with the same strictness (mypy --strict, ruff)."""
    bindir = Path(sys.executable).parent
    plugins = "ansible_collections/testbed/iot/plugins"
    mypy = subprocess.run(
        [
            str(bindir / "mypy"),
            "--strict",
            "--explicit-package-bases",
            "--namespace-packages",
            "--no-incremental",
            plugins,
        ],
        cwd=COLLECTIONS,
        # The modules import testbed.node (they run with the node image's Python, which has
        # it); the project root lets mypy follow those imports.
        env=dict(os.environ, MYPYPATH=str(COLLECTIONS.parent.parent)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    ruff = subprocess.run(
        [str(bindir / "ruff"), "check", str(COLLECTIONS / plugins)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
