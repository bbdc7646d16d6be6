"""One error tree per process, each exit code declared once, and the README's table the same."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import testbed
from testbed.errors import EXIT_CODES, INTERRUPTED, OK, TestbedError
from testbed.node.errors import NODE_EXIT_CODES

README = Path(__file__).resolve().parents[2] / "README.md"


def _every_error_class() -> list[type[TestbedError]]:
    for module in pkgutil.walk_packages(testbed.__path__, "testbed."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    seen: list[type[TestbedError]] = []
    todo: list[type[TestbedError]] = [TestbedError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def _declared(classes: list[type[TestbedError]]) -> dict[int, list[str]]:
    codes: dict[int, list[str]] = {}
    for cls in classes:
        if "exit_code" in vars(cls):
            codes.setdefault(cls.exit_code, []).append(cls.__qualname__)
    return codes


def _is_node(cls: type) -> bool:
    return cls.__module__.startswith("testbed.node.")


def test_host_errors_live_in_errors_py_and_declare_each_code_once() -> None:
    classes = _every_error_class()
    host = [c for c in classes if not _is_node(c) and c.__module__.startswith("testbed.")]
    assert {c.__module__ for c in host} == {"testbed.errors"}, [
        f"{c.__module__}.{c.__qualname__}" for c in host if c.__module__ != "testbed.errors"
    ]
    declared = _declared(host)
    assert {code: names for code, names in declared.items() if len(names) > 1} == {}
    assert set(declared) | {OK, INTERRUPTED} == set(EXIT_CODES)


def test_node_errors_declare_each_code_once_in_their_own_table() -> None:
    node = [c for c in _every_error_class() if _is_node(c)]
    declared = _declared(node)
    assert {code: names for code, names in declared.items() if len(names) > 1} == {}
    assert set(declared) | {0} == set(NODE_EXIT_CODES)


def test_the_readme_table_is_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", text, flags=re.MULTILINE)
    assert {int(code): meaning for code, meaning in rows} == EXIT_CODES


def test_the_cli_names_no_codes_of_its_own() -> None:
    # The CLI's docstring once listed codes that disagreed with the README: it points here now.
    from testbed.cli import app

    assert app.__doc__ is not None and "testbed.errors" in app.__doc__
    assert not re.search(r"\b\d+ (no|already|a node|not running)", app.__doc__)
