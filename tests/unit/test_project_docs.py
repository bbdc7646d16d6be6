"""The documentation describes the repository as it is, and needs nothing outside it.

- docs/architecture.md's Layout section lists exactly the packages and top-level modules of
  testbed/ (a package or module added or removed must be described there too);
- the README and docs/ name no file outside the repository (a clone has no ../shared, and no
  one else has this machine's /work);
- they speak of the project, not of how it was developed (no issue numbers, sessions, rounds).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# "- `name/`: ..." or "- `name.py`: ..." at the start of a line of the Layout section
_ENTRY = re.compile(r"^- `(?P<entry>[A-Za-z0-9_]+(?:/|\.py))`", re.MULTILINE)


def layout_section(text: str) -> str:
    match = re.search(r"^## Layout\n(?P<body>.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/architecture.md has no '## Layout' section"
    return match["body"]


def documented_entries(text: str) -> set[str]:
    return {m["entry"] for m in _ENTRY.finditer(layout_section(text))}


def package_entries(package: Path) -> set[str]:
    """Packages (directories with __init__.py) as 'name/', modules as 'name.py'."""
    out = set()
    for path in package.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            out.add(path.name + "/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            out.add(path.name)
    return out


def test_layout_section_matches_the_package_tree() -> None:
    documented = documented_entries(ARCHITECTURE.read_text(encoding="utf-8"))
    present = package_entries(ROOT / "testbed")
    missing = sorted(present - documented)
    extra = sorted(documented - present)
    assert not (missing or extra), (
        "docs/architecture.md, section Layout, does not match `ls testbed`:\n"
        + (
            f"  not described (add a line '- `NAME`: ...'): {', '.join(missing)}\n"
            if missing
            else ""
        )
        + (
            f"  described but not in testbed/ (remove the line): {', '.join(extra)}\n"
            if extra
            else ""
        )
    )


def test_layout_parsing_sees_packages_and_modules() -> None:
    text = (
        "# A\n## Layout\n- `cli/`: verbs\n- `errors.py`: errors\n  - `nested/` no\n"
        "## Next\n- `x/`: y\n"
    )
    assert documented_entries(text) == {"cli/", "errors.py"}


OUTSIDE = [
    (re.compile(r"\.\./shared"), "../shared"),
    (re.compile(r"(?<![\w.])/work/"), "an absolute /work path"),
    (re.compile(r"ARCHITECTURE\.md"), "ARCHITECTURE.md (docs/architecture.md is the design)"),
]
# "issue 4" but not "voucher issue 8-11k/s"
HISTORY = re.compile(r"\b(?:issues? #?\d+(?![-\d])|sessions? \d+|round \d+|work items?)\b", re.I)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_no_file_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {what}"
        for pattern, what in OUTSIDE
        for m in pattern.finditer(text)
    ]
    assert not found, f"{path.relative_to(ROOT)} names files outside the repository: {found}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_speak_of_the_project_not_of_its_history(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m[0]!r}" for m in HISTORY.finditer(text)
    ]
    assert not found, f"{path.relative_to(ROOT)} speaks of development history: {found}"


def test_readme_points_at_the_architecture() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    notes = (ROOT / "docs" / "engineering-notes.md").read_text(encoding="utf-8")
    assert "architecture.md" in notes


def test_code_comments_speak_of_the_project_not_of_its_history() -> None:
    """The same for code, tests, playbooks and benchmarks (comments and docstrings)."""
    this = Path(__file__).resolve()
    found = []
    for top in ("testbed", "tests", "playbooks", "bench", "images", "topologies"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".yml", ".yaml", ".md") or path.resolve() == this:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [
                f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m[0]!r}"
                for m in HISTORY.finditer(text)
            ]
    assert not found, "development history in code or comments:\n" + "\n".join(found)
