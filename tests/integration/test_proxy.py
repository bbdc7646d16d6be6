"""The border router's CoAP proxy in a running building (tests/fixtures/.../proxy.yaml).

The backend reads lamp-01 through br1's proxy both ways: OSCORE end to end (the proxy counts
only opaque bytes) and DTLS hop by hop (it reads the value). Then the proxy is compromised
(``proxy-tamper``): the end-to-end command is refused by the lamp (OSCORE integrity failure,
counted by the thing) and leaves it as it was; the hop-by-hop command arrives flipped and the
lamp acts on it, while the backend's answer looks right. Bytes and datagrams per request on
each leg of the proxy are printed (pytest -s) from the proxy's own socket counters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import action, metrics, state, wait_for

pytestmark = pytest.mark.integration
TOPOLOGY = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "proxy.yaml"
RUN = f"it-proxy-{uuid.uuid4().hex[:6]}"
COMMAND = {"on": True, "level": 80}
FLIPPED = {"on": False, "level": 20}


@pytest.fixture(scope="module")
def building(docker_client, node_image, cli_env) -> Iterator[DockerEngine]:  # type: ignore[no-untyped-def]
    """The running building; its plan is read from the run directory (TESTBED_HOME)."""
    remove_run(docker_client, RUN)
    up = run_cli(["up", "-t", str(TOPOLOGY), "--run", RUN], cli_env)
    assert "commissioned: 1 of 1 things" in up.stdout, up.stdout
    try:
        backend = DockerEngine(docker_client)
        wait_for(
            lambda: "lamp-01" in state(backend, RUN, "backend")["backend"]["things"],
            60,
            "the backend to list lamp-01",
        )
        yield backend
    finally:
        run_cli(["down", "--run", RUN], cli_env, check=False)
        remove_run(docker_client, RUN)


def _proxy(backend: DockerEngine) -> dict[str, Any]:
    return dict(action(backend, RUN, "br1", "proxy-show"))


def _wire(show: dict[str, Any], legs: tuple[str, str]) -> dict[str, int]:
    out = {}
    for leg in legs:
        for direction in ("sent", "received"):
            out[f"{leg} {direction} B"] = show["wire"][leg]["bytes"][direction]
            out[f"{leg} {direction} datagrams"] = show["wire"][leg]["datagrams"][direction]
    return out


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def _read(backend: DockerEngine, via: str) -> dict[str, Any]:
    return dict(action(backend, RUN, "backend", "read", thing="lamp-01", resource="light", via=via))


def test_the_backend_reads_a_thing_through_the_proxy_both_ways(building) -> None:  # type: ignore[no-untyped-def]
    backend = building
    legs = {"proxy": ("backend-coap", "thing-coap"), "proxy-dtls": ("backend-coaps", "thing-coaps")}
    for via, mode in (("proxy", "end-to-end"), ("proxy-dtls", "hop-by-hop")):
        first = _read(backend, via)  # hop by hop: includes both DTLS handshakes
        assert first["code"] == "2.05" and first["proxy"] == "br1", first
        before = _wire(_proxy(backend), legs[via])
        again = _read(backend, via)
        assert again["code"] == "2.05" and set(again["value"]) == {"on", "level"}, again
        assert again["protected"] is (via == "proxy")
        cost = _delta(before, _wire(_proxy(backend), legs[via]))
        print(f"\none read {via} ({mode}), per leg: {cost}")
        # One request and one response on each leg (a CoAP ACK may ride separately).
        assert all(
            1 <= cost[f"{leg} {d} datagrams"] <= 2
            for leg in legs[via]
            for d in ("sent", "received")
        )
    seen = _proxy(backend)["seen"]
    assert seen["end-to-end"]["opaque_bytes_request"] > 0
    assert "plaintext_bytes_request" not in seen["end-to-end"]
    assert "plaintext_bytes_response" not in seen["end-to-end"]
    assert seen["hop-by-hop"]["plaintext_bytes_response"] > 0
    assert _proxy(backend)["thing_handshakes"] == 1  # the session to the lamp is kept


def test_a_tampering_proxy_is_caught_end_to_end_not_hop_by_hop(building) -> None:  # type: ignore[no-untyped-def]
    backend = building
    start = action(backend, RUN, "backend", "read", thing="lamp-01", resource="light")["value"]
    refused_before = state(backend, RUN, "lamp-01")["requests"]["refused"].get("invalid", 0)
    assert action(backend, RUN, "br1", "proxy-tamper", on=True)["tamper"] is True
    try:
        e2e = action(
            backend, RUN, "backend", "write", thing="lamp-01", resource="light",
            payload=COMMAND, via="proxy",
        )  # fmt: skip
        assert e2e["outcome"] != "ok" and e2e["protected"] is False, e2e
        refused = state(backend, RUN, "lamp-01")["requests"]["refused"].get("invalid", 0)
        assert refused > refused_before  # the thing's OSCORE integrity check refused it
        direct = action(backend, RUN, "backend", "read", thing="lamp-01", resource="light")
        assert direct["value"] == start, direct  # nothing was acted on

        hbh = action(
            backend, RUN, "backend", "write", thing="lamp-01", resource="light",
            payload=COMMAND, via="proxy-dtls",
        )  # fmt: skip
        # The backend's answer looks right (the proxy flipped it back) ...
        assert hbh["outcome"] == "ok" and hbh["value"] == COMMAND, hbh
        # ... but the lamp acted on the flipped command, as a direct OSCORE read shows.
        direct = action(backend, RUN, "backend", "read", thing="lamp-01", resource="light")
        assert direct["value"] == FLIPPED, direct
    finally:
        action(backend, RUN, "br1", "proxy-tamper", on=False)
    series = metrics(backend, RUN, "br1", "testbed_proxy_tampered_total")
    assert series['testbed_proxy_tampered_total{direction="request",mode="end-to-end"}'] >= 1
    assert series['testbed_proxy_tampered_total{direction="request",mode="hop-by-hop"}'] == 1
    thing = metrics(backend, RUN, "lamp-01", "testbed_thing_refused_total")
    assert thing['testbed_thing_refused_total{reason="invalid"}'] >= 1
    proxied = metrics(backend, RUN, "backend", "testbed_backend_proxied_requests_total")
    ok = 'testbed_backend_proxied_requests_total{method="PUT",outcome="ok",via="proxy-dtls"}'
    assert proxied[ok] == 1, proxied


def test_only_backends_reach_the_proxy_ports(building, cli_env) -> None:  # type: ignore[no-untyped-def]
    backend = building
    plan = json.loads((Path(cli_env["TESTBED_HOME"]) / "runs" / RUN / "plan.json").read_text())
    router = next(n for n in plan["nodes"] if n["name"] == "br1")
    address = next(
        i["ipv6"].split("/")[0]
        for i in router["config"]["interfaces"]
        if i["network"] == "internet"
    )
    before = _proxy(backend)["firewall_dropped"]
    assert isinstance(before, int)
    # The lamp is no backend: its datagrams to the proxy ports end in the router's input filter.
    probe = (
        "import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
        f"[s.sendto(b'\\x40\\x01\\x00\\x01', ({address!r}, p)) for p in (5683, 5684)]"
    )
    result = backend.exec(RUN, "lamp-01", ["python3", "-c", probe])
    assert result.exit_code == 0, result.output
    wait_for(
        lambda: _proxy(backend)["firewall_dropped"] >= before + 2,
        10,
        "the router to drop the lamp's datagrams to the proxy ports",
    )
    # The backend's requests still pass (the earlier tests read through both ports).
    assert _read(backend, "proxy")["code"] == "2.05"
