"""What the CLI prints when piped: whole lines, and addresses as they are."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from testbed.cli import output
from testbed.contracts.radio import RadioPanConfig
from testbed.engines.base import NodeStatus
from testbed.errors import TestbedError
from testbed.plan import make_plan
from testbed.topology import load_topology

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def piped(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The CLI's console as `testbed status | grep` or a CI log gets it (no terminal)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    console = output._console()
    console.file = out
    monkeypatch.setattr(output, "console", console)
    return out


def _thing(**changes: Any) -> NodeStatus:
    """A running thing as `testbed status` lists it, with ``changes`` applied."""
    base = NodeStatus(
        run="office",
        node="occupancy-01",
        role="thing",
        kind="thing",
        state="running",
        resource="c0ffee",
        image="testbed/node:x",
        attributes={"device-class": "sensor", "vendor": "ventis", "domain": "hvac"},
    )
    return dataclasses.replace(base, **changes)


def test_status_table_keeps_ipv6_addresses_and_long_names(piped: io.StringIO) -> None:
    # ":100:" inside an address is also rich's emoji code for a "100" sign.
    node = _thing(
        node="thermostat-with-a-long-name-07",
        addresses={"pan-floor1": "fd03:3d3e:191e:100::14", "mgmt": "fd00::1"},
        attributes={"device-class": "thermostat", "vendor": "acme", "domain": "facility"},
        lifecycle="operational",
    )
    output.status_table([node])
    text = piped.getvalue()
    assert "pan-floor1: fd03:3d3e:191e:100::14" in text
    assert "thermostat-with-a-long-name-07" in text and "…" not in text


def test_a_long_message_is_one_line_when_piped(piped: io.StringIO) -> None:
    url = "http://127.0.0.1:3000/d/testbed-lifecycle/testbed-lifecycle-overview?var-run=office"
    hint = "then: testbed dashboards push --url URL --token TOKEN --run office " * 3
    output.console.print(f"  Grafana:  {url} ({hint})")  # longer than any fixed width
    assert piped.getvalue().count("\n") == 1 and url in piped.getvalue()


def test_errors_keep_bracketed_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich reads "[fd00::1]" or "[acme]" as a style tag and drops it: an error must say
    everything it was given."""
    out = io.StringIO()
    err = output._console(stderr=True)
    err.file = out
    monkeypatch.setattr(output, "err_console", err)
    output.error(
        TestbedError(
            "cannot reach http://[fd00::1]:9180/metrics for vendor [acme]",
            "check [fd00::1] from the host",
        )
    )
    text = out.getvalue()
    assert "http://[fd00::1]:9180/metrics for vendor [acme]" in text
    assert "check [fd00::1] from the host" in text


@pytest.mark.parametrize(
    ("reported", "shown"),
    [
        ("lighting", "lighting (planned hvac)"),  # transferred: the owner it reports now
        ("hvac", "hvac"),
        ("", "hvac"),  # not asked (or not answering): the label
    ],
)
def test_status_table_shows_the_owner_a_thing_reports(
    piped: io.StringIO, reported: str, shown: str
) -> None:
    output.status_table([_thing(lifecycle="operational", domain=reported)])
    row = next(line for line in piped.getvalue().splitlines() if "occupancy-01" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert shown in cells, cells


def _planned(node_name: str) -> NodeStatus:
    """A node of the default building (its PAN is ``medium: radio``) as Docker reports it:
    the planned labels, and the addresses of its interfaces on the Docker networks."""
    plan = make_plan(load_topology(ROOT / "topologies" / "default.yaml"), "office")
    node = next(n for n in plan.nodes if n.name == node_name)
    return _thing(
        node=node.name,
        role=node.role,
        addresses={i.network: i.ipv6.split("/")[0] for i in node.config.interfaces},
        attributes=dict(node.config.attributes),
        lifecycle="operational",
    )


def test_a_radio_thing_is_shown_at_its_pan_address_not_at_its_carrier(
    piped: io.StringIO,
) -> None:
    node = _planned("thermostat-01")
    radio = RadioPanConfig.from_attribute("floor1", node.attributes["radio-floor1"])
    carrier = node.addresses["pan-floor1"]
    assert str(radio.ip) != carrier  # the Docker network only carries ZEP
    assert output.data_addresses(node) == {"pan-floor1": str(radio.ip)}
    assert output.carrier_addresses(node) == {"pan-floor1": carrier}
    output.status_table([node])
    text = piped.getvalue()
    assert f"pan-floor1: {radio.ip}" in text
    assert f"pan-floor1 carrier: {carrier}" in text
    assert f"pan-floor1: {carrier}" not in text
    entry = json.loads(output.status_json([node]))[0]
    assert entry["data_addresses"] == {"pan-floor1": str(radio.ip)}
    assert entry["carrier_addresses"] == {"pan-floor1": carrier}
    assert entry["addresses"] == node.addresses  # the attachments, as Docker reports them


def test_nodes_off_the_radio_keep_their_docker_addresses() -> None:
    node = _planned("tc-facility")
    assert output.data_addresses(node) == {
        net: address for net, address in node.addresses.items() if net != "mgmt"
    }
    assert output.carrier_addresses(node) == {}


def test_a_failed_thing_shows_its_reason(piped: io.StringIO) -> None:
    output.status_table([_thing(lifecycle="failed", reason="voucher-foreign-owner")])
    assert "failed voucher-foreign-owner" in piped.getvalue()
