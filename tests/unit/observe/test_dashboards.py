"""Dashboards: valid Grafana JSON, unique panel ids, the provisioned datasource, queries that
parse (promtool), and the files under dashboards/ in sync with testbed.observe.dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.observe import dashboards as D
from testbed.observe.dashcheck import fill, panel_queries, variable_values
from testbed.observe.files import atomic_write
from testbed.observe.promtool import check_rules

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = ROOT / "dashboards"
JSON_FILES = sorted((DASHBOARDS / "json").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_committed_files_are_what_the_generator_writes() -> None:
    expected = D.rendered_files()
    on_disk = {
        p.relative_to(DASHBOARDS).as_posix(): p.read_text(encoding="utf-8")
        for p in DASHBOARDS.rglob("*")
        if p.is_file() and p.suffix in {".json", ".yaml"}
    }
    assert on_disk == expected, "run `python -m testbed.observe.dashboards` and commit"


def test_four_dashboards() -> None:
    titles = {_load(p)["title"] for p in JSON_FILES}
    assert titles == {
        "Testbed: lifecycle overview",
        "Testbed: bootstrap cost",
        "Testbed: trust center",
        "Testbed: PAN health",
    }
    assert len({_load(p)["uid"] for p in JSON_FILES}) == len(JSON_FILES)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.stem)
def test_panels_have_unique_ids_and_use_the_provisioned_datasource(path: Path) -> None:
    dashboard = _load(path)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": D.DATASOURCE_UID}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == D.DATASOURCE_UID
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == D.DATASOURCE_UID
    assert dashboard["templating"]["list"][0]["name"] == "run"


def test_provisioning_names_the_same_datasource() -> None:
    datasources = yaml.safe_load(
        (DASHBOARDS / "provisioning" / "datasources" / "testbed.yaml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["uid"] == D.DATASOURCE_UID and source["type"] == "prometheus"
    providers = yaml.safe_load(
        (DASHBOARDS / "provisioning" / "dashboards" / "testbed.yaml").read_text()
    )
    assert providers["providers"][0]["options"]["path"] == D.DASHBOARD_DIR


def test_every_query_selects_the_run() -> None:
    for path in JSON_FILES:
        for query in panel_queries(_load(path)):
            assert 'run="$run"' in query.expr, (query.panel, query.expr)


def test_every_filled_query_parses(tmp_path: Path, promtool: str) -> None:
    # promtool parses the PromQL of rule files: each filled query becomes a recording rule.
    rules = []
    for path in JSON_FILES:
        dashboard = _load(path)
        values = variable_values(dashboard, "some-run")
        for number, query in enumerate(panel_queries(dashboard)):
            filled = fill(query.expr, values)
            assert "$" not in filled, filled
            rules.append(
                {"record": f"check:{path.stem.replace('-', '_')}:{number}", "expr": filled}
            )
    atomic_write(
        tmp_path / "queries.yml", yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]})
    )
    result = check_rules(tmp_path / "queries.yml")
    assert result.ok, result.output
