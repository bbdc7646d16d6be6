"""Read a topology file: YAML -> Topology, with errors that name the file, the line and the key.

PyYAML loses line numbers once it builds Python objects, so the file is composed twice over the
same text: once into nodes (which keep their marks) to map key paths to lines, once into data.
Duplicate keys, which PyYAML would silently merge, are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from testbed.errors import InputError, TopologyError
from testbed.topology.references import Loc, cross_reference_problems, dotted
from testbed.topology.schema import Topology

Lines = dict[Loc, int]


def load_topology(path: Path | str) -> Topology:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise TopologyError(
            f"{path}: no such topology file", "list the shipped ones with: ls topologies/"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError(
            f"{path}: cannot read: {exc}", "check the path and permissions"
        ) from exc
    return parse_topology(text, source=str(path))


def read_mapping(
    text: str, source: str, error: type[InputError], top_level: str, example: str
) -> tuple[dict[str, Any], Lines]:
    """A YAML file's top-level mapping and the line of every key path in it, for errors that
    name file, line and key. Bad YAML, a top level that is not a mapping and a key given twice
    raise ``error`` (``top_level``: what the mapping must hold; ``example``: where to look)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise error(
            f"{where}: not valid YAML: {exc.problem}", "fix the YAML syntax at that line"
        ) from exc
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}", "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise error(f"{source}:1: (top level): {top_level}", example)
    lines: Lines = {}
    try:
        _collect_lines(root, (), lines, source)
    except TopologyError as exc:  # a key given twice: the same words in the caller's class
        if error is TopologyError:
            raise
        raise error(exc.message, exc.hint) from exc
    return data, lines


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    data, lines = read_mapping(
        text,
        source,
        TopologyError,
        "a topology must be a mapping with keys like 'building', 'things'",
        "see topologies/default.yaml or run: testbed schema",
    )
    try:
        topology = Topology.model_validate(data, context={"defer_cross_references": True})
    except ValidationError as exc:
        raise TopologyError(
            _format_errors(source, lines, [(tuple(e["loc"]), _message(e)) for e in exc.errors()]),
            "fix the key named above; `testbed schema` prints every allowed key",
        ) from exc
    problems = cross_reference_problems(topology)
    if problems:
        raise TopologyError(
            _format_errors(source, lines, problems),
            "make the reference point at a name defined in the file",
        )
    return topology


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (misspelt?)"
    if error["type"] == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _format_errors(source: str, lines: Lines, problems: list[tuple[Loc, str]]) -> str:
    out = []
    for loc, message in problems:
        # pydantic puts union/tagged members into the path; keep only real keys and indices.
        loc = tuple(p for p in loc if isinstance(p, int) or not str(p).startswith("function-"))
        out.append(f"{source}:{_line_for(lines, loc)}: {dotted(loc) or '(top level)'}: {message}")
    head = "invalid topology" if len(out) == 1 else f"invalid topology ({len(out)} problems)"
    return head + "\n  " + "\n  ".join(out)


def _line_for(lines: Lines, loc: Loc) -> int:
    # A missing key has no line of its own: point at the closest enclosing one that exists.
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _collect_lines(node: yaml.Node | None, loc: Loc, lines: Lines, source: str) -> None:
    if node is None:
        return
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise TopologyError(
                    f"{source}:{line}: {dotted((*loc, key))}: key given twice "
                    f"(first at line {seen[key]})",
                    "remove one of the two entries",
                )
            seen[key] = line
            lines[(*loc, key)] = line
            _collect_lines(value_node, (*loc, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*loc, index), lines, source)
