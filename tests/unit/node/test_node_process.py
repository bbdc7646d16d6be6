"""The node process end to end on this host: start, ready, state, metrics, stop, restart."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.unit.node.node_harness import NodeProcess, free_port, http, thing_config


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
        return text


def sample(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


def test_thing_ready_state_metrics_and_sigterm(node_factory: Any) -> None:
    node: NodeProcess = node_factory(thing_config()).start()
    node.wait_ready()

    assert http(node.control_port, "GET", "/ready") == (200, {"ready": True})
    status, state = http(node.control_port, "GET", "/state")
    assert status == 200
    assert state["node"] == "thermostat-01"
    assert state["role"] == "thing"
    assert state["attributes"]["vendor"] == "acme"
    assert state["state"] == {
        "vendor": "acme",
        "model": "t-1000",
        "device_class": "sensor",
        "domain": "hvac",
        "pan": "floor1",
        "profile": "edhoc-oscore",
        "firmware": "1.0.0",
        "lifecycle": "installed",
        "lifecycle_since": state["state"]["lifecycle_since"],
        "lifecycle_transitions": 0,
        # the rest of the status record: nothing enrolled, no trust center configured
        "reason": None,
        "trust_center_uri": None,
        "ldevid_serial": None,
        "generation": None,
        "group_generation": None,
    }
    # On this host the node leaves the network alone (testbed.node.netns): nothing to report.
    assert "host" in state["network"]["skipped"]

    metrics = scrape(node.metrics_port)
    assert "testbed_node_up 1.0" in metrics
    assert "testbed_node_ready 1.0" in metrics
    (info,) = sample(metrics, "testbed_node_info{")
    for label in ('run="unit"', 'node="thermostat-01"', 'role="thing"', 'vendor="acme"'):
        assert label in info
    (start,) = sample(metrics, "testbed_node_start_time_seconds ")
    assert abs(float(start.split()[1]) - time.time()) < 60
    assert 'testbed_thing_lifecycle_state{state="installed"} 1.0' in metrics
    assert "_created" not in metrics

    code, took = node.stop(signal.SIGTERM)
    assert code == 0
    assert took < 2.0
    events = node.events()  # every stdout line is one JSON object
    assert {"ts", "level", "node", "role", "event", "fields"} <= set(events[-1])
    assert events[-1]["event"] == "node.stopped"
    assert events[-1]["fields"]["signal"] == "SIGTERM"


def test_sigint_exits_zero(node_factory: Any) -> None:
    node = node_factory(thing_config()).start()
    node.wait_ready()
    code, took = node.stop(signal.SIGINT)
    assert (code, took < 2.0) == (0, True)


def test_lifecycle_state_survives_restart(node_factory: Any, tmp_path: Path) -> None:
    config = thing_config()
    state_dir = tmp_path / "volume"
    first = node_factory(config, state_dir).start()
    first.wait_ready()
    status, body = http(
        first.control_port, "POST", "/actions/transition", b'{"to": "bootstrapping"}'
    )
    assert (status, body["result"]) == (200, {"from": "installed", "to": "bootstrapping"})
    assert first.stop()[0] == 0
    assert json.loads((state_dir / "state.json").read_text())["lifecycle"] == "bootstrapping"

    second = node_factory(config, state_dir).start()
    second.wait_ready()
    state = http(second.control_port, "GET", "/state")[1]["state"]
    assert state["lifecycle"] == "bootstrapping"
    assert state["lifecycle_transitions"] == 1
    assert any(e["event"] == "lifecycle.loaded" for e in second.events())
    assert second.stop()[0] == 0


def test_corrupt_state_file_is_not_reset(node_factory: Any, tmp_path: Path) -> None:
    state_dir = tmp_path / "volume"
    state_dir.mkdir()
    (state_dir / "state.json").write_text('{"lifecycle": "decommi')
    node = node_factory(thing_config(), state_dir).start()
    assert node.proc is not None
    assert node.proc.wait(10) == 1
    assert "corrupt" in node.output()
    assert (state_dir / "state.json").read_text() == '{"lifecycle": "decommi'


@pytest.mark.parametrize(
    ("role", "attributes", "extra_interfaces", "expected"),
    [
        (
            "border_router",
            {"pans": "pan1,pan0"},
            [
                {"network": "pan-pan1", "ipv6": "fd00:1::1/64"},
                {"network": "pan-pan0", "ipv6": "fd00:0::1/64"},
            ],
            {
                "pans": ["pan0", "pan1"],
                "forwarding": False,
                # The PAN addresses are not on this host: no relay socket, said why.
                "group_relay": {
                    "port": 5690,
                    "listening": [],
                    "unbound": {
                        "pan0": "fd00::1 is not an address of this node",
                        "pan1": "fd00:1::1 is not an address of this node",
                    },
                    "relayed": {},
                    "refused": {},
                },
            },
        ),
        (
            "border_router",
            {},
            [
                {"network": "pan-pan1", "ipv6": "fd00:1::1/64"},
                {"network": "pan-pan0", "ipv6": "fd00:0::1/64"},
                {"network": "backbone", "ipv6": "fd00:b::1/64"},
            ],
            {
                "pans": ["pan0", "pan1"],
                "forwarding": False,
                # The PAN addresses are not on this host: no relay socket, said why.
                "group_relay": {
                    "port": 5690,
                    "listening": [],
                    "unbound": {
                        "pan0": "fd00::1 is not an address of this node",
                        "pan1": "fd00:1::1 is not an address of this node",
                    },
                    "relayed": {},
                    "refused": {},
                },
            },
        ),
        (
            "internet_host",
            {"kind": "attacker"},
            [],
            {
                "kind": "attacker",
                "attacker": {
                    "available": ["coap-flood", "edhoc-flood", "fragment-flood", "replay"],
                    "running": {},
                    "finished": {},
                },
            },
        ),
        ("internet_host", {"kind": "backend"}, [], {"kind": "backend"}),
    ],
)
def test_roles_report_their_facts(
    node_factory: Any,
    role: str,
    attributes: dict[str, str],
    extra_interfaces: list[dict[str, str]],
    expected: dict[str, Any],
) -> None:
    config = thing_config(node=f"{role}-1", role=role, attributes=attributes)
    config["interfaces"] += extra_interfaces
    node = node_factory(config).start()
    node.wait_ready()
    status, state = http(node.control_port, "GET", "/state")
    if role == "border_router":  # the guards are never loaded into this host's firewall
        assert state["state"].pop("policy") == {"installed": False, "rules": []}
    assert (status, state["role"], state["state"]) == (200, role, expected)
    # phase-mark is on every node (testbed.node.phase_marks); a router adds policy-show (its
    # guards are always there), the attacker its attacks (testbed.node.attacker), the other
    # roles none of their own
    own = {
        "border_router": ["policy-show"],
        "attacker": ["attack-start", "attack-status", "attack-stop", "status"],
    }.get("attacker" if attributes.get("kind") == "attacker" else role, [])
    actions = sorted(["phase-mark", *own])
    assert http(node.control_port, "GET", "/actions") == (200, {"actions": actions})
    if role == "border_router":
        assert "testbed_border_router_served_pans 2.0" in scrape(node.metrics_port)
    assert node.stop()[0] == 0


def test_trust_center_without_its_keys_refuses_to_start(node_factory: Any) -> None:
    """A trust center without credentials would only produce misleading refusals: exit 2."""
    config = thing_config(
        node="tc-1", role="trust_center", attributes={"domain": "hvac", "trusted-vendors": "acme"}
    )
    node = node_factory(config).start()
    assert node.proc is not None
    assert node.proc.wait(15) == 2
    assert "EDHOC identity" in node.output()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"role": "toaster"}, "unknown role 'toaster'"),
        ({"attributes": {"vendor": "acme"}}, "lacks attribute(s): model"),
        ({"role": "internet_host", "attributes": {"kind": "cloud"}}, "unknown kind 'cloud'"),
        ({"interfaces": [{"network": "backbone", "ipv6": "::1/128"}]}, "no interface on"),
        ({"routes": [{"prefix": "not-a-prefix", "via": "::1"}]}, "invalid route"),
    ],
)
def test_bad_config_exits_2_with_a_clear_message(
    node_factory: Any, overrides: dict[str, Any], message: str
) -> None:
    node = node_factory(thing_config(**overrides)).start()
    assert node.proc is not None
    assert node.proc.wait(10) == 2
    (event,) = [e for e in node.events() if e["event"] == "node.failed"]
    assert message in event["fields"]["error"]
    assert event["level"] == "error"


def test_unknown_role_names_the_known_ones(node_factory: Any) -> None:
    node = node_factory(thing_config(role="toaster")).start()
    assert node.proc is not None
    assert node.proc.wait(10) == 2
    (event,) = [e for e in node.events() if e["event"] == "node.failed"]
    assert "thing" in event["fields"]["hint"]
    assert "border_router" in event["fields"]["hint"]


def test_missing_config_exits_2(node_factory: Any, tmp_path: Path) -> None:
    node = node_factory(thing_config())
    node.config_path = tmp_path / "absent.json"
    node.start()
    assert node.proc is not None
    assert node.proc.wait(10) == 2
    assert "no config file" in node.output()


def test_not_ready_while_metrics_address_is_unavailable_and_stops_fast(
    node_factory: Any,
) -> None:
    # An address no interface has: binding fails like a tentative one does, so the node keeps
    # retrying, /ready says 503, and SIGTERM must still end it promptly with exit 0.
    config = thing_config(interfaces=[{"network": "mgmt", "ipv6": "fd00:dead:beef::1/128"}])
    node = node_factory(config).start()
    deadline = time.monotonic() + 10
    status: int | None = None
    while time.monotonic() < deadline:
        try:
            status, body = http(node.control_port, "GET", "/ready")
            break
        except OSError:
            time.sleep(0.05)
    assert (status, body) == (503, {"ready": False})
    assert http(node.control_port, "GET", "/state")[1]["state"] is None
    assert http(node.control_port, "POST", "/actions/transition", b'{"to": "failed"}')[0] == 503
    code, took = node.stop()
    assert (code, took < 2.0) == (0, True)


def test_control_port_taken_exits_1(node_factory: Any) -> None:
    first = node_factory(thing_config()).start()
    first.wait_ready()
    clash = thing_config(
        node="clash", control_port=first.control_port, metrics_port=free_port("::1")
    )
    second = node_factory(clash).start()
    assert second.proc is not None
    assert second.proc.wait(10) == 1
    assert "cannot serve control" in second.output()
    first.stop()
