"""The topology a scenario runs: its file with the scenario's overrides merged in and the
scenario's seed given to every PAN, written next to the reports (what ran is on record)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from testbed.errors import ScenarioError
from testbed.node.thing.catalog import DEVICE_CLASSES
from testbed.topology import load_topology
from testbed.topology.schema import Topology


def merge(base: Any, override: Any) -> Any:
    """Mappings key by key; lists of named mappings by name (new names appended); else replace."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(override, dict) and isinstance(base, list) and _named(base):
        # A mapping over a list of named items: {floor1: {loss: 10%}} changes pan floor1.
        items = [dict(i) for i in base]
        for name, value in override.items():
            found = [i for i in items if i.get("name") == name]
            if not found:
                raise ScenarioError(
                    f"overrides: no item named {name!r} to change",
                    f"names here: {', '.join(str(i.get('name')) for i in items)}",
                )
            index = items.index(found[0])
            items[index] = merge(found[0], value)
        return items
    if isinstance(base, list) and isinstance(override, list) and _named(base) and _named(override):
        items = [dict(i) for i in base]
        names = [i.get("name") for i in items]
        for item in override:
            if item.get("name") in names:
                index = names.index(item.get("name"))
                items[index] = merge(items[index], item)
            else:
                items.append(copy.deepcopy(item))
        return items
    return copy.deepcopy(override)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def resolve(scenario_file: Path, topology: str) -> Path:
    path = (scenario_file.parent / topology).resolve()
    if not path.is_file():
        raise ScenarioError(
            f"{scenario_file}: topology: no such file {topology!r} (looked at {path})",
            "give a path relative to the scenario file, e.g. ../topologies/radio.yaml",
        )
    return path


def write_merged(source: Path, overrides: dict[str, Any], seed: int, out: Path) -> Topology:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    merged = merge(data, overrides)
    for pan in merged.get("pans", []):
        if isinstance(pan, dict):
            pan["seed"] = seed
    header = f"# {source.name} with the scenario's overrides; every PAN's seed is {seed}\n"
    out.write_text(header + yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return load_topology(out)


def vocabulary(topology: Topology) -> dict[str, list[str]]:
    """Words an eavesdropper should not read in clear: who is who and what they serve."""
    things = [n for t in topology.things for n in t.names()]
    return {
        "thing_names": things,
        "vendors": [v.name for v in topology.vendors],
        "models": [m.name for v in topology.vendors for m in v.models],
        "domains": [d.name for d in topology.domains],
        "resources": sorted({r.name for specs in DEVICE_CLASSES.values() for r in specs}),
    }
