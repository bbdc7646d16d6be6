"""Shipped scenarios, short versions, end to end against real Docker through the CLI: the
reports they write are parsed (JUnit XML, results.json, report.html) and every run they made
is gone afterwards.

fragmentation-fate: a one-thing radio building, bootstraps at 0 % and 20 % frame loss.
handshake-flood: an attacker host on the Internet side floods the trust center with EDHOC
message_1 while things bootstrap; its counters come back through the control endpoint.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

SCENARIOS = ["fragmentation-fate", "handshake-flood"]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.sections: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        elif tag == "section":
            self.sections.append(values.get("id") or "")
        elif tag == "a":
            self.links.append(values.get("href") or "")


@pytest.fixture(scope="module")
def reports(docker_client, node_image, cli_env, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("reports")
    proc = run_cli(
        ["scenario", "run", *SCENARIOS, "--short", "--out", str(out), "--run-prefix", "it"],
        cli_env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return out


def test_junit_has_one_passing_case_per_point(reports: Path) -> None:
    root = ET.parse(reports / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("failures"), root.get("errors")) == ("0", "0")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == set(SCENARIOS)
    frag = [c.get("name") for c in suites["fragmentation-fate"].iter("testcase")]
    assert frag == ["loss=0.0, repeat 0", "loss=0.2, repeat 0"]
    props = {p.get("name"): p.get("value") for p in suites["fragmentation-fate"].iter("property")}
    assert props["seed"] == "7" and props["run"].startswith("it-")


def test_results_hold_every_measured_value_with_point_and_seed(reports: Path) -> None:
    data = json.loads((reports / "results.json").read_text())
    scenarios = {s["name"]: s for s in data["scenarios"]}
    assert data["commit"] and data["not_deterministic"]
    frag = scenarios["fragmentation-fate"]
    assert [p["point"] for p in frag["points"]] == [{"loss": 0.0}, {"loss": 0.2}]
    for point in frag["points"]:
        values = {m["name"]: m["value"] for m in point["measurements"]}
        assert values["boot.success_rate"] == 1.0
        assert values["boot.frames"] >= 3 and values["boot.bytes"] > 500
        assert point["seed"] == 7 and all(e["passed"] for e in point["expectations"])
        # the border router followed the bootstrap's fragmented datagrams to their fate
        assert values["boot.frag.datagrams"] >= 1
        assert values["boot.frag.fragments_per_datagram"] >= 2
        assert 0 <= values["boot.frag.lost_one"] <= values["boot.frag.lost"]
        assert values["boot.frag.bound_low"] <= values["boot.frag.lost"]
        assert values["boot.frag.lost"] <= values["boot.frag.bound_high"]
        assert values["boot.frag.model_ok"] == 1.0
        hit = values["boot.frag.bootstraps_hit"]
        assert 0.0 <= values["boot.frag.lost_to_single_fragment"] <= hit
    lossless = {m["name"]: m["value"] for m in frag["points"][0]["measurements"]}
    assert lossless["boot.frag.expected_lost"] == 0.0 and lossless["boot.frag.lost"] == 0.0
    lossy = {m["name"]: m["value"] for m in frag["points"][1]["measurements"]}
    # q = 0.2^4 per fragment: the model expects a small, positive loss
    assert 0.0 < lossy["boot.frag.expected_lost"] < 1.0
    # the merged topology really ran the PAN on the radio medium, with the scenario's seed
    topology = (reports / "fragmentation-fate" / "topology.yaml").read_text()
    assert "medium: radio" in topology and "seed: 7" in topology
    flood = {
        m["name"]: m["value"] for m in scenarios["handshake-flood"]["points"][0]["measurements"]
    }
    assert flood["flood.sent"] >= 50
    assert flood["flood.answered"] >= 1  # message_2 came back: the trust center kept state
    assert flood["tc.edhoc_sessions"] >= 1
    assert 0.0 <= flood["boot.flood.success_rate"] <= 1.0


def test_report_page_is_self_contained_with_plots_and_links(reports: Path) -> None:
    page = _Page()
    text = (reports / "report.html").read_text()
    page.feed(text)
    assert page.sections == SCENARIOS
    assert page.images and all(i.startswith("data:image/png;base64,") for i in page.images)
    assert not [i for i in page.images if i.startswith("http")]
    assert "boot.success_rate against loss" in text
    for link in page.links:
        if not link.startswith(("#", "http")):
            assert (reports / link).is_file(), link
    assert "fragmentation-fate/metrics.json" in page.links


def test_every_run_is_gone(reports: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((reports / "results.json").read_text())
    for scenario in data["scenarios"]:
        flt = {"label": [f"testbed.run={scenario['run']}"]}
        assert not docker_client.containers.list(all=True, filters=flt), scenario["run"]
        assert not docker_client.volumes.list(filters=flt), scenario["run"]
