"""The testbed's own walls, attacked from real containers of a running building.

two-operators.yaml with an attacker host added (``hosts: attacker``; the policy lets attackers
reach nothing). Each attack runs the way an experiment runs it: ``testbed exec NODE -- ...``,
with the node's run-time privileges. Where the wall must hold even against a process with the
container's full capability set (what `docker exec` as root gets), the test says so and uses
the backend's exec directly: that is how the IPv4 route and the default route via mgmt of the
attacks below are put in place at all.

Traffic is UDP to port 5999 of the victim (IPv4 and IPv6), each datagram carrying a tag, counted
where it reaches the victim's interfaces (a packet socket), so that the test sees exactly which
attack got through the router and which control datagram arrived.

The tests of this module share one building (module-scoped fixture).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import bringup
from testbed.engines.docker import DockerEngine
from testbed.observe.service import find_observer, observer_address
from testbed.plan.model import Plan
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import metrics, wait_for

pytestmark = pytest.mark.integration

PORT = 5999
# Counts what reaches the victim's interfaces (AF_PACKET: before the victim's own stack, which
# might drop a packet for reasons of its own, e.g. no route back for reverse path filtering).
LISTEN = """
import ipaddress, json, os, socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
open("/tmp/listening-{tag}", "w").close()
s.settimeout(0.2)
got, end, stop = [], time.monotonic() + 120, None
while time.monotonic() < end and (stop is None or time.monotonic() < stop):
    if stop is None and os.path.exists("/tmp/stop-{tag}"):
        stop = time.monotonic() + 1.0  # what is still in flight
    try:
        frame, where = s.recvfrom(65535)
    except TimeoutError:
        continue
    if where[2] == socket.PACKET_OUTGOING:
        continue
    kind, ip = frame[12:14], frame[14:]
    if kind == b"\\x08\\x00" and ip[9] == 17:
        udp, source = ip[(ip[0] & 15) * 4:], ipaddress.IPv4Address(ip[12:16])
    elif kind == b"\\x86\\xdd" and ip[6] == 17:
        udp, source = ip[40:], ipaddress.IPv6Address(ip[8:24])
    else:
        continue
    if int.from_bytes(udp[2:4], "big") == {port}:
        got.append([udp[8:].decode(errors="replace"), str(source)])
print(json.dumps(got))
"""
# Sends three datagrams; with a source, bound with IPV6_FREEBIND (needs no capability: this is
# how any process forges a source address, so the router must not trust it).
SEND = """
import socket, sys, time
family, source, target, tag = sys.argv[1:5]
s = socket.socket(socket.AF_INET if family == "4" else socket.AF_INET6, socket.SOCK_DGRAM)
if source:
    s.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
    s.bind((source, 0))
s.settimeout(1)
for _ in range(3):
    try:
        s.sendto(tag.encode(), (target, {port}))
    except OSError as exc:
        print("send failed:", exc)
    time.sleep(0.1)
"""


@dataclass
class Building:
    backend: DockerEngine
    docker: Any
    run: str
    plan: Plan
    env: dict[str, str]

    def address(self, node: str) -> str:
        plan = self.plan.node(node)
        return plan.data_address(plan.config.interfaces[-1].network)

    def mgmt(self, node: str) -> str:
        return self.plan.node(node).config.address("mgmt")

    def ipv4(self, node: str, network: str) -> str:
        container = self.docker.containers.get(f"tb-{self.run}-{node}")
        nets = container.attrs["NetworkSettings"]["Networks"]
        return str(nets[self.plan.network(network).resource]["IPAddress"])

    def texec(self, node: str, *cmd: str) -> tuple[int, str]:
        """As an experiment runs it: `testbed exec` (the node's run-time privileges)."""
        done = run_cli(["exec", node, "--run", self.run, "--", *cmd], self.env, check=False)
        return done.returncode, done.stdout + done.stderr

    def root(self, node: str, *cmd: str) -> tuple[int, str]:
        """With the container's whole capability set (`docker exec` as root)."""
        result = self.backend.exec(self.run, node, list(cmd))
        return result.exit_code, result.output.decode(errors="replace")

    def deliveries(
        self, target: str, sends: list[tuple[str, str, str, str, str]]
    ) -> dict[str, str]:
        """Listen on ``target`` while each (node, family, source, destination, tag) is sent
        with `testbed exec`; returns tag -> source address of what arrived."""
        tag = uuid.uuid4().hex[:8]
        out: list[str] = []
        script = LISTEN.format(port=PORT, tag=tag)
        listener = threading.Thread(
            target=lambda: out.append(self.root(target, "python3", "-c", script)[1])
        )
        listener.start()
        wait_for(
            lambda: self.root(target, "test", "-e", f"/tmp/listening-{tag}")[0] == 0, 30, "bind"
        )
        for node, family, source, destination, label in sends:
            self.texec(node, "python3", "-c", SEND.format(port=PORT), family, source, destination,
                       label)  # fmt: skip
        self.root(target, "touch", f"/tmp/stop-{tag}")
        listener.join(60)
        received = json.loads(out[0]) if out else []
        return {data: peer for data, peer in received}

    def dropped(self, rule: str) -> float:
        series = metrics(self.backend, self.run, "br1", "testbed_policy_dropped_packets_total")
        return series.get(f'testbed_policy_dropped_packets_total{{rule="{rule}"}}', 0.0)


@pytest.fixture(scope="module")
def building(
    docker_client: Any, node_image: str, cli_env: dict[str, str], tmp_path_factory: Any
) -> Iterator[Building]:
    topology = yaml.safe_load((ROOT / "topologies" / "two-operators.yaml").read_text())
    topology["hosts"].append({"name": "attacker", "role": "attacker"})
    path = Path(tmp_path_factory.mktemp("walls")) / "two-operators-attacker.yaml"
    path.write_text(yaml.safe_dump(topology, sort_keys=False))
    run = f"walls-{uuid.uuid4().hex[:6]}"
    backend = DockerEngine(docker_client)
    try:
        plan, text = bringup.plan_for(path, run)
        bringup.up(backend, plan, text, node_image, lambda event, name: None)
        yield Building(backend, docker_client, run, plan, cli_env)
    finally:
        try:
            bringup.down(backend, run)
        except Exception:
            remove_run(docker_client, run)


def test_ipv4_is_not_forwarded_even_with_routes_via_the_router(building: Building) -> None:
    """An attacker host and a thing route IPv4 via br1 (as root could): nothing arrives."""
    tc = building.ipv4("tc-hvac", "backbone")
    routes = {
        "attacker": building.ipv4("br1", "internet"),
        "thermostat-01": building.ipv4("br1", "pan-floor1"),
    }
    for node, via in routes.items():
        code, said = building.root(node, "ip", "-4", "route", "replace", f"{tc}/32", "via", via)
        assert code == 0, said
    got = building.deliveries(
        "tc-hvac",
        [
            ("attacker", "4", "", tc, "v4-attacker"),
            ("thermostat-01", "4", "", tc, "v4-thing"),
            ("backend", "6", "", building.address("tc-hvac"), "v6-control"),
        ],
    )
    assert set(got) == {"v6-control"}, got  # the control shows the listener hears
    # On a host with br_netfilter, Docker's isolation rules of internal networks drop these
    # datagrams too, before they reach br1; the router must not rely on that.
    for knob in ("ip_forward", "conf/all/forwarding"):
        assert building.root("br1", "cat", f"/proc/sys/net/ipv4/{knob}")[1].strip() == "0"
    chain = building.texec("br1", "nft", "list", "chain", "inet", "tb_policy", "forward")[1]
    assert 'meta nfproto ipv4 counter name "r_ipv4" drop' in chain, chain


def test_the_policy_holds_against_forged_source_addresses(building: Building) -> None:
    """A denied host or thing that claims an allowed thing's address gets nothing through."""
    tc, thermostat = building.address("tc-hvac"), building.address("thermostat-01")
    before = building.dropped("spoofed-source")
    got = building.deliveries(
        "tc-hvac",
        [
            ("backend", "6", "", tc, "allowed"),  # default-backend
            ("attacker", "6", "", tc, "attacker"),  # default-deny
            ("attacker", "6", thermostat, tc, "attacker-as-thermostat"),
            ("lamp-01", "6", thermostat, tc, "lamp-as-thermostat"),  # floor2 claims floor1
            ("thermostat-01", "6", "", tc, "thermostat"),  # the real one: default-domain
        ],
    )
    assert got.keys() == {"allowed", "thermostat"}, got
    assert got["thermostat"] == thermostat
    # 3 datagrams from the attacker; the lamp's 3 unless the radio refused them first
    wait_for(lambda: building.dropped("spoofed-source") >= before + 3, 30, "the spoof counter")


def test_mgmt_carries_nothing_a_node_starts(building: Building) -> None:
    """Neither Prometheus's API nor another node's mgmt address answers a node, on v4 or v6."""
    observer = find_observer(building.docker, building.run)
    assert observer is not None, "the run's Prometheus is not running"
    container = building.docker.containers.get(observer.container)
    on_mgmt = container.attrs["NetworkSettings"]["Networks"][building.plan.network("mgmt").resource]
    targets = {
        "prometheus6": f"http://[{observer_address(building.plan)}]:9090/-/ready",
        "prometheus4": f"http://{on_mgmt['IPAddress']}:9090/-/ready",
        "tc-metrics": f"http://[{building.mgmt('tc-hvac')}]:9180/metrics",
        "tc-control": f"http://[{building.mgmt('tc-hvac')}]:8730/ready",
    }
    fetch = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)"
    for node in ("attacker", "thermostat-01", "backend"):
        for name, url in targets.items():
            code, said = building.texec(node, "python3", "-c", fetch, url)
            assert code != 0, f"{node} reached {name} over mgmt: {said}"
    # The same fetches work from the host side (Prometheus) and within a node: the filter
    # is what stopped them, not a dead service.
    assert urllib.request.urlopen(f"{observer.url}/-/ready", timeout=5).status == 200


def test_prometheus_scrapes_every_node_through_the_filters(building: Building) -> None:
    from testbed.observe.api import PrometheusAPI

    observer = find_observer(building.docker, building.run)
    assert observer is not None
    api = PrometheusAPI(observer.url)
    nodes = {n.name for n in building.plan.nodes}

    def all_up() -> set[str] | None:
        up = {t["labels"].get("node") for t in api.targets() if t.get("health") == "up"}
        return None if nodes - up else up

    wait_for(all_up, 120, "every node's target up")


def test_prometheus_lifecycle_endpoints_have_no_effect(building: Building) -> None:
    observer = find_observer(building.docker, building.run)
    assert observer is not None
    for path in ("/-/reload", "/-/quit"):
        request = urllib.request.Request(f"{observer.url}{path}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403  # "Lifecycle API is not enabled."
    assert urllib.request.urlopen(f"{observer.url}/-/ready", timeout=5).status == 200


@pytest.mark.parametrize("node", ["thermostat-01", "attacker", "backend", "tc-hvac"])
def test_no_node_but_the_router_can_change_its_network(building: Building, node: str) -> None:
    code, said = building.texec(node, "ip", "-6", "route", "add", "unreachable", "fd00:bad::/64")
    assert code != 0 and "Operation not permitted" in said, said
    code, said = building.texec(node, "nft", "flush", "ruleset")
    assert code != 0 and "Operation not permitted" in said, said
    status = building.root(node, "cat", "/proc/1/status")[1]  # the node process itself
    masks = {k: int(v, 16) for k, _, v in (line.partition(":\t") for line in status.splitlines())
             if k.startswith("Cap")}  # fmt: skip
    assert all(not value & (1 << 12 | 1 << 13) for value in masks.values()), masks


def test_the_router_keeps_what_link_settings_need(building: Building) -> None:
    code, said = building.texec("br1", "nft", "list", "table", "inet", "tb_policy")
    assert code == 0 and "spoofed" in said, said


def test_a_default_route_via_mgmt_reaches_nothing(building: Building) -> None:
    gateway = building.plan.network("mgmt").gateway6  # the Docker host's side of mgmt
    code, said = building.texec("attacker", "ip", "-6", "route", "add", "default", "via", gateway)
    assert code != 0 and "Operation not permitted" in said, said
    for node in ("attacker", "thermostat-01"):
        # What a process with the container's whole capability set could do; even then the
        # node's mgmt filter lets nothing out that the node starts.
        assert (
            building.root(node, "ip", "-6", "route", "replace", "default", "via", gateway)[0] == 0
        )
        reach = ["python3", "-m", "testbed.node.probe", "reach", gateway, "--count", "2",
                 "--timeout", "1"]  # fmt: skip
        code, said = building.root(node, *reach)
        assert code != 0, f"{node} reached the Docker host via mgmt: {said}"


def test_router_advertisements_are_not_accepted_anywhere(building: Building) -> None:
    for node in ("attacker", "thermostat-01", "tc-hvac", "br1"):
        code, said = building.root(
            node, "sh", "-c", "grep -H . /proc/sys/net/ipv6/conf/*/accept_ra"
        )
        assert code == 0 and said.strip(), said
        # lo exists before Docker writes the sysctls, and no RA ever arrives on it
        accepting = [
            line
            for line in said.splitlines()
            if not line.endswith(":0") and "/conf/lo/" not in line
        ]
        assert not accepting, f"{node}: {accepting}"
