"""The host's planning and running layers reach the nodes only through testbed.contracts.

testbed.plan, testbed.topology, testbed.compose and testbed.usecases describe and run a building;
what they share with the code inside the containers (node.json, radio and proxy attributes,
energy model, profile names, metric catalogue) lives in testbed.contracts, so that the node
package can change without the planner noticing and the import graph has no node/ below plan/.
Every import statement is checked, including imports inside functions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_node_isolation import imported_names

ROOT = Path(__file__).resolve().parents[1].parent
HOST_PACKAGES = ("plan", "topology", "compose", "usecases")
# module path (relative to the repository) -> why it may import testbed.node. Empty: keep it so.
ALLOWED: dict[str, str] = {}


def host_modules() -> list[Path]:
    return sorted(p for pkg in HOST_PACKAGES for p in (ROOT / "testbed" / pkg).rglob("*.py"))


def node_imports(path: Path) -> list[str]:
    return [
        f"line {lineno}: {name}"
        for lineno, name in imported_names(path)
        if name == "testbed.node" or name.startswith("testbed.node.")
    ]


def test_host_layers_import_no_node_module() -> None:
    modules = host_modules()
    assert len(modules) > 10
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if (found := node_imports(path)) and str(path.relative_to(ROOT)) not in ALLOWED
    }
    assert not offenders, "host modules importing testbed.node (use testbed.contracts):\n" + (
        "\n".join(f"{module}: {', '.join(lines)}" for module, lines in sorted(offenders.items()))
    )


def test_every_host_package_exists() -> None:
    # A package renamed or moved must not silently drop out of the check.
    missing = [
        pkg for pkg in HOST_PACKAGES if not (ROOT / "testbed" / pkg / "__init__.py").is_file()
    ]
    assert not missing, f"HOST_PACKAGES names packages that are gone: {missing}"


def test_every_allowed_exception_still_exists_and_has_a_reason() -> None:
    for module, reason in ALLOWED.items():
        assert (ROOT / module).is_file(), module
        assert reason.strip(), module


@pytest.mark.parametrize(
    "source",
    [
        "from testbed.node.radio.medium import Medium\n",
        "def f():\n    import testbed.node.radio\n",
        "from testbed import node\n",
    ],
)
def test_the_check_catches_a_node_import(tmp_path: Path, source: str) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    assert node_imports(bad)
