"""Packed things: 64 things in two thing hosts on two radio PANs, next to a thing of its own.

One building (tests/fixtures/topologies/integration/packed.yaml, commissioning: auto) for the
whole module: every thing commissions, the backend reads each one over OSCORE at its own
address, each packed thing is its own station on its PAN's medium and has its own status,
metrics and refusal counts, a group command reaches each packed thing and an unprotected
request to the group address is refused by each, a link setting and an
air capture can name one packed thing, restarting one packed thing alone is refused, and one
packed thing is decommissioned through ``testbed phase --limit`` and is then refused while its
packmates keep working; last, the whole run is stopped and started again.
"""

from __future__ import annotations

import json
import struct
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import bringup
from testbed.contracts.radio import ext_from_short, short_from_ext
from testbed.engines.docker import DockerEngine
from testbed.node.radio import mac, zep
from testbed.phases import inventory
from testbed.phases.runner import run_phase
from testbed.plan.model import Plan
from tests.integration.conftest import (
    ROOT,
    RUN_PREFIX,
    phase_environment,
    remove_run,
    run_cli,
)
from tests.integration.nodes import action, state, wait_for

pytestmark = pytest.mark.integration

TOPOLOGY = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "packed.yaml"
LEAVER = "lamp-07"  # decommissioned
PACKMATE = "lamp-08"  # same thing host, keeps working
PROBED = "thermo-05"  # sent an unprotected request


@dataclass
class Packed:
    backend: DockerEngine
    run: str
    plan: Plan
    env: dict[str, str]
    outcomes: dict[str, tuple[str, str]]

    @property
    def things(self) -> list[str]:
        return [n.name for n in self.plan.nodes if n.role == "thing"]

    def listed(self) -> dict[str, Any]:
        things: dict[str, Any] = state(self.backend, self.run, "backend")["backend"]["things"]
        return things

    def read(self, thing: str, resource: str) -> tuple[int, dict[str, Any]]:
        """The backend's read of one thing: (probe exit code, its answer or error)."""
        params = json.dumps({"thing": thing, "resource": resource})
        result = self.backend.exec(
            self.run,
            "backend",
            ["python3", "-m", "testbed.node.probe", "action", "read", params],
        )
        return result.exit_code, json.loads(result.output)


@pytest.fixture(scope="module")
def packed(docker_client: Any, node_image: str, cli_env: dict[str, str]) -> Iterator[Packed]:
    run = f"{RUN_PREFIX}pk-{uuid.uuid4().hex[:6]}"
    with phase_environment(cli_env) as env:
        backend = DockerEngine(docker_client)
        try:
            plan, text = bringup.plan_for(TOPOLOGY, run)
            bringup.up(backend, plan, text, node_image, lambda event, name: None)
            outcomes = bringup.wait_commissioned(
                backend, plan, lambda event, name: None, timeout=600
            )
            yield Packed(backend, run, plan, env, outcomes)
        finally:
            try:
                bringup.down(backend, run)
            except Exception:
                remove_run(docker_client, run)


def test_the_plan_makes_two_thing_hosts_and_every_thing_commissions(packed: Packed) -> None:
    containers = sorted(n.name for n in packed.plan.nodes if not n.packed_in)
    assert "lamp-pack-01" in containers and "thermo-pack-01" in containers
    assert set(containers).isdisjoint(n.name for n in packed.plan.nodes if n.packed_in)
    assert len(containers) == 7  # 2 routers, trust center, backend, 2 thing hosts, solo-01
    assert len(packed.things) == 65
    assert {packed.outcomes[t][0] for t in packed.things} == {"operational"}, packed.outcomes


def test_the_backend_reads_every_thing_at_its_own_address(packed: Packed) -> None:
    def all_read() -> bool:
        listed = packed.listed()
        return all(
            any(r.get("outcome") == "ok" and r.get("protected") for r in entry["last"].values())
            for entry in (listed.get(t) for t in packed.things)
            if entry is not None and entry.get("last")
        ) and set(packed.things) <= set(listed)

    wait_for(all_read, 180, "the backend to read all 65 things")
    listed = packed.listed()
    addresses = {listed[t]["address"] for t in packed.things}
    assert len(addresses) == 65  # each from its own PAN address
    for thing in packed.things:
        node = packed.plan.node(thing)
        assert listed[thing]["address"] == node.data_address(f"pan-{node.config.attributes['pan']}")


def test_each_packed_thing_is_its_own_station(packed: Packed) -> None:
    shown = action(packed.backend, packed.run, "br-east", "link-show")
    nodes = shown["east"]["medium"]["nodes"]
    lamps = [t for t in packed.things if t.startswith("lamp-")]
    assert set(lamps) <= set(nodes), sorted(nodes)
    assert all(nodes[t]["transmissions"] > 0 for t in lamps)
    endpoints = shown["east"]["endpoints"]
    # One carrier address for the pack, one port each.
    assert len({endpoints[t] for t in lamps}) == len(lamps)
    assert len({endpoints[t].rpartition(":")[0] for t in lamps}) == 1


def test_status_and_inventory_have_one_entry_per_thing(packed: Packed) -> None:
    shown = run_cli(["status", "--run", packed.run, "--json"], packed.env)
    rows = {row["node"]: row for row in json.loads(shown.stdout)}
    for thing in packed.things:
        assert rows[thing]["lifecycle"] == "operational", rows[thing]
    hosts = inventory.inventory_for_run(packed.backend, packed.run).hosts
    assert hosts["lamp-03"]["ansible_host"] == hosts["lamp-04"]["ansible_host"]
    assert (
        hosts["lamp-03"]["ansible_docker_extra_env"] != hosts["lamp-04"]["ansible_docker_extra_env"]
    )
    assert hosts["lamp-03"]["testbed_lifecycle"] == "operational"


def test_metrics_are_per_thing(packed: Packed) -> None:
    node = packed.plan.node("lamp-03")
    script = (
        "import urllib.request; print(urllib.request.urlopen("
        f"'http://[{node.config.address('mgmt')}]:{node.config.metrics_port}/metrics')"
        ".read().decode())"
    )
    result = packed.backend.exec(packed.run, "lamp-03", ["python3", "-c", script])
    assert result.exit_code == 0, result.output
    text = result.output.decode()
    assert "testbed_node_info{" in text and 'node="lamp-03"' in text
    assert 'testbed_thing_lifecycle_state{state="operational"} 1.0' in text


def test_prometheus_scrapes_each_packed_thing(packed: Packed) -> None:
    """Through the thing host's mgmt filter, at each packed thing's own metrics port."""
    services = packed.backend.services()
    assert services is not None
    url = services.prometheus_url(packed.run)
    assert url is not None
    query = urllib.parse.urlencode({"query": 'up{role="thing"}'})

    def down() -> dict[str, str]:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as answer:
            results = json.load(answer)["data"]["result"]
        up = {r["metric"].get("node"): r["value"][1] for r in results}
        return {t: up.get(t, "absent") for t in packed.things if up.get(t) != "1"}

    missing: dict[str, str] = {}

    def all_up() -> bool:
        missing.clear()
        missing.update(down())
        return not missing

    try:
        wait_for(all_up, 90, "Prometheus to scrape every packed thing")
    except AssertionError:
        raise AssertionError(f"not scraped as up: {missing}") from None


def test_an_unprotected_request_to_one_packed_thing_is_refused(packed: Packed) -> None:
    def refused(thing: str) -> int:
        counts = state(packed.backend, packed.run, thing)["requests"]["refused"]
        return int(counts.get("unprotected", 0))

    before, beside = refused(PROBED), refused("thermo-06")
    answer = action(
        packed.backend,
        packed.run,
        "backend",
        "probe-unprotected",
        thing=PROBED,
        resource="temperature",
    )
    assert answer["code"] == "4.01", answer
    assert refused(PROBED) == before + 1
    assert refused("thermo-06") == beside  # counted by the thing it was sent to only


def pack_requests(packed: Packed, host: str) -> dict[str, dict[str, Any]]:
    """Each packed thing's request counts, from one GET /state of its thing host."""
    answer = packed.backend.node_state(packed.run, host)
    assert answer is not None, f"{host} did not answer GET /state"
    return {thing: entry["state"]["requests"] for thing, entry in answer["packed"].items()}


def puts(requests: dict[str, Any]) -> int:
    return int(requests["handled"].get("/light", {}).get("PUT", {}).get("2.04", 0))


def test_a_group_command_reaches_every_packed_thing(packed: Packed) -> None:
    wait_for(
        lambda: state(packed.backend, packed.run, "backend")["backend"]["group"]["generations"]
        .get("facility"),
        120,
        "the backend's group grant",
    )  # fmt: skip
    lamps = [t for t in packed.things if t.startswith("lamp-")]
    before = pack_requests(packed, "lamp-pack-01")
    solo = state(packed.backend, packed.run, "solo-01")["requests"]
    thermos = {
        t: r["handled"].get("/light") for t, r in pack_requests(packed, "thermo-pack-01").items()
    }
    sent = run_cli(
        ["group", "east", "light", '{"on": false}', "--run", packed.run, "--json"], packed.env
    )
    assert json.loads(sent.stdout)["router"] == "br-east", sent.stdout

    def acted() -> list[str]:
        after = pack_requests(packed, "lamp-pack-01")
        return [t for t in lamps if puts(after[t]) == puts(before[t]) + 1]

    # One multicast datagram on the PAN, each packed thing handling its own copy under its own
    # group context (a PUT answered 2.04 once each), as the thing with a container of its own.
    wait_for(lambda: len(acted()) == len(lamps), 60, "all 32 packed lamps to act")
    wait_for(
        lambda: puts(state(packed.backend, packed.run, "solo-01")["requests"]) == puts(solo) + 1,
        30,
        "solo-01 to act",
    )
    # The other PAN's things never saw it.
    after = pack_requests(packed, "thermo-pack-01")
    assert {t: r["handled"].get("/light") for t, r in after.items()} == thermos


# An unprotected CoAP NON PUT /light {"on": false} to All CoAP Nodes on the thing's PAN
# interface, sent from a thing whose commands an experimenter controls (raw bytes: no OSCORE,
# no group signature). Multicast loop off: the sender's own server does not see it.
UNPROTECTED_GROUP_PUT = """
import json, socket, struct
from pathlib import Path
payload = json.dumps({"on": False}).encode()
message = bytes([0x50, 0x03]) + struct.pack("!H", 0x5EC1)  # NON PUT, no token
message += bytes([0xB5]) + b"light" + bytes([0x11, 50])  # Uri-Path, Content-Format JSON
message += b"\\xff" + payload
names = [line.split()[-1] for line in Path("/proc/net/if_inet6").read_text().splitlines()]
iface = next(n for n in names if n.startswith("lowpan"))
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(iface))
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
sock.sendto(message, ("ff05::fd", 5683))
print(iface, len(message))
"""


def test_an_unprotected_request_to_the_group_address_is_refused_by_every_packed_thing(
    packed: Packed,
) -> None:
    lamps = [t for t in packed.things if t.startswith("lamp-")]

    def unprotected(requests: dict[str, Any]) -> int:
        return int(requests["refused"].get("unprotected", 0))

    before = pack_requests(packed, "lamp-pack-01")
    sent = run_cli(
        ["exec", "solo-01", "--run", packed.run, "--", "python3", "-c", UNPROTECTED_GROUP_PUT],
        packed.env,
    )
    assert sent.stdout.split()[0].startswith("lowpan"), sent.stdout

    def refused_by() -> list[str]:
        after = pack_requests(packed, "lamp-pack-01")
        return [t for t in lamps if unprotected(after[t]) == unprotected(before[t]) + 1]

    # One multicast datagram on the PAN reached each packed lamp's own server once, and each
    # refused it as unprotected, as a thing in a container of its own refuses it.
    wait_for(lambda: len(refused_by()) == len(lamps), 60, "all 32 packed lamps to refuse it")
    after = pack_requests(packed, "lamp-pack-01")
    assert [t for t in lamps if puts(after[t]) != puts(before[t])] == []  # none acted on it
    assert [t for t in lamps if unprotected(after[t]) > unprotected(before[t]) + 1] == []


def test_a_link_setting_on_one_packed_thing_leaves_its_packmates_alone(packed: Packed) -> None:
    lossy, mate = "lamp-05", "lamp-06"

    def links() -> dict[str, Any]:
        shown = action(packed.backend, packed.run, "br-east", "link-show")
        out: dict[str, Any] = shown["east"]["medium"]["links"]
        return out

    def lost_towards(thing: str, counts: dict[str, Any]) -> tuple[int, int]:
        into = [v for k, v in counts.items() if k.endswith(f"->{thing}")]
        return (
            sum(v["dropped"]["channel-loss"] for v in into),
            sum(v["delivered"] for v in into),
        )

    set_ = run_cli(
        ["link", "set", "pan-east", "--node", lossy, "--loss", "100%", "--run", packed.run],
        packed.env,
    )
    assert f"frame loss 100% on every radio link of {lossy}" in " ".join(set_.stdout.split())
    try:
        before = links()
        for key, link in before.items():
            ends = key.split("->")
            assert link["delivery"] == (0.0 if lossy in ends else 1.0), (key, link)
        lost, _ = lost_towards(lossy, before)
        _, heard = lost_towards(mate, before)
        mate_lost, _ = lost_towards(mate, before)
        # The backend reads every thing every few seconds: its requests to lossy are lost on
        # the air, those to its packmate arrive.
        wait_for(
            lambda: (
                lost_towards(lossy, links())[0] >= lost + 3
                and lost_towards(mate, links())[1] >= heard + 1
            ),
            60,
            f"frames to {lossy} to be lost and frames to {mate} delivered",
        )
        assert lost_towards(mate, links())[0] == mate_lost
    finally:
        run_cli(["link", "reset", "pan-east", "--run", packed.run], packed.env)
    assert all(link["delivery"] == 1.0 for link in links().values())
    refused = run_cli(
        ["link", "set", "pan-east", "--node", "nobody", "--loss", "1%", "--run", packed.run],
        packed.env,
        check=False,
    )
    assert refused.returncode != 0 and "no node 'nobody' on PAN east" in refused.stdout + (
        refused.stderr
    )


def air(path: Path) -> list[tuple[int, mac.MacFrame | None]]:
    """(ZEP source port, decoded 802.15.4 frame; None for an ACK) of each datagram of a
    capture (LINKTYPE_RAW: IPv6, UDP, ZEP)."""
    data = path.read_bytes()
    out = []
    offset = 24
    while offset < len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        packet = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        message = zep.decode(packet[48:])
        assert isinstance(message, zep.ZepData)
        frame = mac.decode(message.frame)
        sport = struct.unpack_from("!H", packet, 40)[0]
        out.append((sport, None if frame.frame_type == mac.FRAME_ACK else frame))
    return out


def test_the_air_of_the_pan_and_of_one_packed_thing(packed: Packed, tmp_path: Path) -> None:
    caught = "lamp-10"
    endpoints = action(packed.backend, packed.run, "br-east", "link-show")["east"]["endpoints"]
    port_of = {t: int(e.rpartition(":")[2]) for t, e in endpoints.items()}
    whole, one = tmp_path / "east.pcap", tmp_path / "lamp-10.pcap"
    # The backend reads every thing every few seconds: each capture sees some of those reads.
    run_cli(
        ["capture", "east", "-o", str(whole), "--duration", "6", "--run", packed.run], packed.env
    )
    only = ["--node", caught, "-o", str(one), "--duration", "12", "--run", packed.run]
    shown = run_cli(["capture", "east", *only], packed.env)
    assert f"frames of {caught}" in shown.stdout, shown.stdout
    # The whole PAN: packed lamps send from their thing host's carrier address, each from its
    # own port, and each port carries exactly one station's MAC source address.
    lamps = {port_of[t]: t for t in packed.things if t.startswith("lamp-") and t in port_of}
    sources: dict[int, set[bytes]] = {}
    for sport, frame in air(whole):
        if frame is not None and sport in lamps and frame.src is not None:
            sources.setdefault(sport, set()).add(short_from_ext(frame.src) or frame.src)
    assert len(sources) >= 2, sources
    assert all(len(addresses) == 1 for addresses in sources.values()), sources
    # One packed thing: what it sent and what was sent to it, nothing of its packmates.
    frames = air(one)
    own = {
        short_from_ext(f.src) or f.src
        for sport, f in frames
        if f is not None and f.src and sport == port_of[caught]
    }
    assert len(own) == 1 and len(next(iter(own))) == 2, own
    (short,) = own
    addresses = {short, ext_from_short(int.from_bytes(short, "big"))}
    data = [(sport, f) for sport, f in frames if f is not None]
    assert any(f.dst in addresses for _, f in data) and any(f.src in addresses for _, f in data)
    assert all(f.src in addresses or f.dst in addresses for _, f in data), data
    assert {sport for sport, _ in frames} <= {port_of[caught], 17754}


def test_one_packed_thing_cannot_be_stopped_alone(packed: Packed) -> None:
    refused = run_cli(["restart", "lamp-05", "--run", packed.run], packed.env, check=False)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == 2, said
    assert "lamp-05 is a packed thing: it runs in thing host lamp-pack-01 with 31 packmates" in said
    assert "testbed restart lamp-pack-01" in said
    assert action(packed.backend, packed.run, "lamp-05", "status")["lifecycle"] == "operational"


def test_decommission_one_packed_thing_through_its_phase(packed: Packed) -> None:
    result = run_phase("decommission", engine=packed.backend, run=packed.run, limit=LEAVER)
    assert result.succeeded and set(result.hosts) == {LEAVER}, result.hosts
    status = action(packed.backend, packed.run, LEAVER, "status")
    assert status["lifecycle"] == "decommissioned" and status["ldevid_serial"] is None
    assert action(packed.backend, packed.run, PACKMATE, "status")["lifecycle"] == "operational"
    wait_for(lambda: LEAVER not in packed.listed(), 60, f"the backend to drop {LEAVER}")
    code, answer = packed.read(LEAVER, "light")
    assert code != 0 or answer.get("result", {}).get("code") != "2.05", answer
    code, answer = packed.read(PACKMATE, "light")
    assert code == 0 and answer["result"]["code"] == "2.05", answer
    assert answer["result"]["protected"]
    # Commissioning it again is refused by the thing itself.
    again = run_cli(
        ["phase", "commission", "--run", packed.run, "--limit", LEAVER], packed.env, check=False
    )
    assert again.returncode != 0
    assert "cannot commission a decommissioned thing" in " ".join(again.stdout.split())


def test_restarting_a_thing_host_restarts_its_pack(packed: Packed) -> None:
    """Last: the whole pack of thermostats goes down and comes back, each thing operational."""
    host = "thermo-pack-01"
    thermos = [t for t in packed.things if t.startswith("thermo-")]
    restarted = run_cli(["restart", host, "--run", packed.run], packed.env)
    assert "started 1" in " ".join(restarted.stdout.split()), restarted.stdout
    shown = run_cli(["status", "--run", packed.run, "--json"], packed.env)
    rows = {row["node"]: row for row in json.loads(shown.stdout)}
    assert {rows[t]["lifecycle"] for t in thermos} == {"operational"}
    # The others never stopped.
    assert rows["lamp-08"]["lifecycle"] == "operational" and rows["solo-01"]["state"] == "running"

    def readable() -> bool:
        code, answer = packed.read(PROBED, "temperature")
        return code == 0 and answer["result"]["code"] == "2.05"

    wait_for(readable, 120, f"the backend to read {PROBED} again")


def test_the_whole_packed_run_stops_and_starts_again(packed: Packed) -> None:
    """After everything else: `testbed stop` and `start` of the whole run bring every thing
    host back with its pack, each thing in the state it had (the decommissioned one stays out)."""
    run_cli(["stop", "--run", packed.run], packed.env)
    nodes = [n for n in packed.backend.status(packed.run) if n.role != "observer"]
    assert nodes and {n.state for n in nodes} == {"exited"}, [(n.node, n.state) for n in nodes]

    run_cli(["start", "--run", packed.run], packed.env)
    shown = run_cli(["status", "--run", packed.run, "--json"], packed.env)
    rows = {row["node"]: row for row in json.loads(shown.stdout)}
    assert {rows[t]["lifecycle"] for t in packed.things if t != LEAVER} == {"operational"}
    assert rows[LEAVER]["lifecycle"] == "decommissioned"
    assert {rows[h]["state"] for h in ("lamp-pack-01", "thermo-pack-01")} == {"running"}

    def readable(thing: str) -> bool:
        code, answer = packed.read(thing, "light")
        return code == 0 and answer["result"]["code"] == "2.05"

    wait_for(lambda: readable(PACKMATE), 120, f"the backend to read {PACKMATE} again")
    code, answer = packed.read(LEAVER, "light")
    assert code != 0 or answer.get("result", {}).get("code") != "2.05", answer
