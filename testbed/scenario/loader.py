"""Read a scenario file: YAML -> Scenario, with errors that name the file, the line and the key.

The line map and error format are the topology loader's (``testbed.topology.loader``), so both
kinds of file report problems the same way: ``FILE:LINE: key.path: message``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from testbed.errors import ScenarioError
from testbed.scenario.schema import Scenario, Step
from testbed.topology import loader as topology_loader
from testbed.topology.schema import dotted

PLACEHOLDER = re.compile(r"\$\{([a-z][a-z0-9_]*)\}")
Lines = dict[tuple[str | int, ...], int]


def load_scenario(path: Path | str, *, short: bool = False) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ScenarioError(
            f"{path}: no such scenario file", "list the shipped ones: testbed scenario list"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}", "check path and permissions") from exc
    return parse_scenario(text, source=str(path), short=short)


def read_data(text: str, source: str) -> tuple[dict[str, Any], Lines]:
    return topology_loader.read_mapping(
        text,
        source,
        ScenarioError,
        "a scenario must be a mapping with keys like 'name', 'topology', 'steps'",
        "see scenarios/fragmentation-fate.yaml",
    )


def parse_scenario(text: str, source: str = "<scenario>", *, short: bool = False) -> Scenario:
    data, lines = read_data(text, source)
    if short and isinstance(data.get("short"), dict):
        data = {**data, **data["short"]}
    sweep = data.get("sweep")
    first: dict[str, Any] = {"repeat": 0, "seed": data.get("seed", 1)}
    if isinstance(sweep, dict) and isinstance(sweep.get("values"), list) and sweep["values"]:
        first[str(sweep.get("parameter"))] = sweep["values"][0]
    # Validate with the first point's values in place of ${...}: types are checked as they
    # will be at run time; each point is substituted and validated again when it runs.
    checked = {**data, "steps": substitute(data.get("steps"), first, source, lines, ("steps",))}
    try:
        scenario = Scenario.model_validate(checked)
    except ValidationError as exc:
        raise ScenarioError(format_errors(source, lines, exc), HINT) from exc
    if scenario.sweep is not None and len(set(map(str, scenario.sweep.values))) != len(
        scenario.sweep.values
    ):
        raise ScenarioError(
            f"{source}:{_line(lines, ('sweep', 'values'))}: sweep.values: a value is given twice",
            "each sweep point once; use 'repeat' to run a point more than once",
        )
    return scenario


HINT = "fix the key named above; see docs/nightly.md for every step and key"


def steps_for_point(
    scenario_text: str, source: str, values: dict[str, Any], *, short: bool = False
) -> list[Step]:
    """The scenario's ``steps`` with ``${...}`` replaced by this point's values, validated."""
    data, lines = read_data(scenario_text, source)
    if short and isinstance(data.get("short"), dict):
        data = {**data, **data["short"]}
    raw = substitute(data.get("steps"), values, source, lines, ("steps",))
    out = []
    for index, item in enumerate(raw or []):
        try:
            out.append(Step.model_validate(item))
        except ValidationError as exc:
            raise ScenarioError(
                format_errors(source, lines, exc, prefix=("steps", index)), HINT
            ) from exc
    return out


def substitute(
    value: Any, values: dict[str, Any], source: str, lines: Lines, loc: tuple[str | int, ...]
) -> Any:
    if isinstance(value, dict):
        return {k: substitute(v, values, source, lines, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values, source, lines, (*loc, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    for name in PLACEHOLDER.findall(value):
        if name not in values:
            raise ScenarioError(
                f"{source}:{_line(lines, loc)}: {dotted(loc)}: unknown parameter ${{{name}}}",
                f"parameters here: {', '.join('${' + k + '}' for k in sorted(values))}",
            )
    whole = PLACEHOLDER.fullmatch(value)
    if whole:  # "${loss}" alone keeps the value's type (a number stays a number)
        return values[whole.group(1)]
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)


def format_errors(
    source: str, lines: Lines, exc: ValidationError, prefix: tuple[str | int, ...] = ()
) -> str:
    out = []
    for error in exc.errors():
        loc = (*prefix, *tuple(error["loc"]))
        loc = tuple(p for p in loc if isinstance(p, int) or not str(p).startswith("function-"))
        message = topology_loader._message(error)
        out.append(f"{source}:{_line(lines, loc)}: {dotted(loc) or '(top level)'}: {message}")
    head = "invalid scenario" if len(out) == 1 else f"invalid scenario ({len(out)} problems)"
    return head + "\n  " + "\n  ".join(out)


def _line(lines: Lines, loc: tuple[str | int, ...]) -> int:
    return topology_loader._line_for(lines, loc)
