"""dtls-cert and dtls-psk against a real trust center: loss, replay, unknown peers, and what
tshark makes of the handshake on the wire."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry, generate_latest

from testbed.node.bootstrap.profile import FailureReason, Outcome
from testbed.node.dtls import records as R
from testbed.node.trust_center.registry import Registry

from .world import World, coaps_port_of, port_of, running

PROFILES = ("edhoc-oscore", "dtls-cert", "dtls-psk")


class Relay(asyncio.DatagramProtocol):
    """A UDP relay thing <-> trust center that drops a seeded fraction of datagrams (both
    directions) and keeps everything it forwarded."""

    def __init__(self, server: tuple[str, int], loss: float, seed: int) -> None:
        self.server = server
        self.loss = loss
        self.rng = random.Random(seed)
        self.client: Any = None
        self.transport: Any = None
        self.upstream: Any = None
        self.forwarded: list[tuple[str, bytes]] = []
        self.dropped = 0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("::1", 0))
        relay = self

        class Up(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                relay._forward("server", data)

        self.upstream, _ = await loop.create_datagram_endpoint(Up, remote_addr=self.server)
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.client = addr
        self._forward("client", data)

    def _forward(self, sender: str, data: bytes) -> None:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.forwarded.append((sender, data))
        if sender == "client":
            self.upstream.sendto(data)
        elif self.client is not None:
            self.transport.sendto(data, self.client)

    def close(self) -> None:
        self.transport.close()
        self.upstream.close()


async def _through_relay(
    world: World, profile: str, loss: float, seed: int, serials: list[str]
) -> tuple[list[Any], Relay]:
    async with running(world) as role:
        relay = Relay(("::1", coaps_port_of(role)), loss, seed)
        port = await relay.start()
        try:
            results = []
            for serial in serials:
                thing = next(t for t in world.things if t.serial == serial)
                results.append(
                    await world.bootstrap(
                        thing, port_of(role), profile_name=profile, coaps_port=port, timeout_s=60
                    )
                )
            return results, relay
        finally:
            relay.close()


@pytest.mark.parametrize("profile", ["dtls-cert", "dtls-psk"])
def test_bootstraps_survive_frame_loss(world: World, profile: str) -> None:
    serials = [f"SN-L{i}" for i in range(4)]
    for serial in serials:
        world.make_thing(serial)
    world.write_material()
    results, relay = asyncio.run(_through_relay(world, profile, 0.2, 7, serials))
    assert relay.dropped > 0
    assert [r.outcome for r in results] == [Outcome.SUCCESS] * len(serials)
    # The losses were repaired by retransmission: DTLS flights (timer) or CoAP (CON).
    assert sum(r.retransmissions for r in results) > 0 or any(
        r.total("sent")[1] > 5 for r in results
    )


def test_a_replayed_enrollment_record_is_not_answered_again(world: World) -> None:
    thing = world.make_thing("SN-RP")
    world.write_material()

    async def body() -> tuple[Any, int, int]:
        async with running(world) as role:
            relay = Relay(("::1", coaps_port_of(role)), 0.0, 1)
            port = await relay.start()
            try:
                result = await world.bootstrap(
                    thing, port_of(role), profile_name="dtls-psk", coaps_port=port
                )
                request = next(
                    d
                    for s, d in relay.forwarded
                    if s == "client" and d[0] == R.ContentType.APPLICATION_DATA
                )
                before = len(relay.forwarded)
                # The attacker replays the CSR record from the thing's address (the relay).
                relay.upstream.sendto(request)
                await asyncio.sleep(0.5)
                return result, relay.forwarded[:before], relay.forwarded[before:]
            finally:
                relay.close()

    result, _, later = asyncio.run(body())
    assert result.outcome is Outcome.SUCCESS
    # No answer: the session was closed and the record is not new. Only application data from
    # the trust center would be an answer; a late alert or a flight its timer resent on a
    # loaded machine may still pass the relay after the bootstrap returned (seen once: 9 == 8).
    answers = [d for s, d in later if s == "server" and d[0] == R.ContentType.APPLICATION_DATA]
    assert answers == []
    registry = Registry.open(world.state)
    try:
        (row,) = registry.things()
        assert row.enrollments == 1
    finally:
        registry.close()


@pytest.mark.parametrize("profile", ["dtls-cert", "dtls-psk"])
def test_a_thing_without_device_record_is_refused_at_the_handshake(
    world: World, profile: str
) -> None:
    world.make_thing("SN-OK")
    stranger = world.make_thing("SN-ST", imported=False)
    world.write_material()

    async def body() -> Any:
        async with running(world) as role:
            return await world.bootstrap(
                stranger, port_of(role), profile_name=profile, coaps_port=coaps_port_of(role)
            )

    result = asyncio.run(body())
    assert (result.outcome, result.reason) == (Outcome.FAILURE, FailureReason.HANDSHAKE_REFUSED)
    registry = Registry.open(world.state)
    try:
        assert [r.reason for r in registry.refusals()] == ["unknown-device"]
    finally:
        registry.close()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_decodes_a_dtls_cert_bootstrap_without_malformed_packets(
    world: World, tmp_path: Path
) -> None:
    scapy = pytest.importorskip("scapy.all")
    world.make_thing("SN-TS")
    world.write_material()
    results, relay = asyncio.run(_through_relay(world, "dtls-cert", 0.0, 1, ["SN-TS"]))
    assert results[0].outcome is Outcome.SUCCESS
    thing, tc = ("fd00::2", 40000), ("fd00::1", 5684)
    packets = [
        scapy.IPv6(src=a[0], dst=b[0]) / scapy.UDP(sport=a[1], dport=b[1]) / scapy.Raw(data)
        for sender, data in relay.forwarded
        for a, b in [(thing, tc) if sender == "client" else (tc, thing)]
    ]
    pcap = tmp_path / "dtls-cert.pcap"
    scapy.wrpcap(str(pcap), packets)

    def tshark(*args: str) -> str:
        command = ["tshark", "-r", str(pcap), "-d", "udp.port==5684,dtls", *args]
        return subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=60
        ).stdout

    decoded, summary = tshark("-V"), tshark()
    # tshark labels the IDevID's hwType OID (2.25.<128-bit UUID>, X.667) "Malformed OID": its
    # OID display stops at 64-bit arcs. That is a field annotation, not a malformed packet.
    assert "Malformed Packet" not in decoded
    assert tshark("-Y", "_ws.malformed").strip() == ""
    for message in (
        "Client Hello",
        "Hello Verify Request",
        "Certificate",
        "Server Key Exchange",
        "Certificate Request",
        "Certificate Verify",
        "Client Key Exchange",
        "Change Cipher Spec",
        "Encrypted Handshake Message",  # Finished, under the new keys
        "Application Data",
    ):
        assert message in summary, message
    assert decoded.count("Handshake Type: Certificate (11)") == 2  # both sides presented one


def test_the_trust_center_labels_its_metrics_with_the_profile(world: World) -> None:
    things = {p: world.make_thing(f"SN-M{i}") for i, p in enumerate(PROFILES)}
    world.write_material()
    metrics = CollectorRegistry()

    async def body() -> list[Any]:
        async with running(world, metrics=metrics) as role:
            results = []
            for profile, thing in things.items():
                results.append(
                    await world.bootstrap(
                        thing,
                        port_of(role),
                        profile_name=profile,
                        coaps_port=coaps_port_of(role),
                    )
                )
            await asyncio.sleep(0.2)  # the bootstrap record is stored after the answer is out
            return results

    results = asyncio.run(body())
    assert [r.outcome for r in results] == [Outcome.SUCCESS] * 3
    exported = generate_latest(metrics).decode()
    for profile in PROFILES:
        assert (
            f'testbed_tc_enrollments_total{{domain="hvac",model="t-1000",outcome="success",'
            f'profile="{profile}",reason="",vendor="acme"}} 1.0'
        ) in exported
        assert (
            f'testbed_tc_bootstrap_duration_seconds_count{{domain="hvac",model="t-1000",'
            f'profile="{profile}",vendor="acme"}} 1.0'
        ) in exported


def test_a_silent_trust_center_is_a_timeout_after_counted_retransmissions(world: World) -> None:
    from testbed.node import material as M
    from testbed.node.bootstrap.dtls_coaps import DtlsProfile
    from testbed.node.bootstrap.profile import BootstrapContext, FactoryIdentity, TrustCenterRef
    from testbed.pki import store

    thing = world.make_thing("SN-SI")
    world.write_material()

    async def body() -> Any:
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("::1", 0)
        )
        port = silent.get_extra_info("sockname")[1]
        try:
            profile = DtlsProfile("psk", port=port, handshake_timeout=(0.1, 0.4))
            ctx = BootstrapContext(
                node="n",
                identity=FactoryIdentity(
                    private_key=thing.directory / store.DEVICE_KEY_PEM,
                    ccs=thing.directory / store.DEVICE_CCS,
                    psk=thing.directory / M.DEVICE_PSK,
                ),
                trust_center=TrustCenterRef(uri="coap://[::1]:1"),
                csr_der=thing.csr(),
                timeout_s=30,
            )
            return await profile.bootstrap(ctx)
        finally:
            silent.close()

    result = asyncio.run(body())
    assert (result.outcome, result.reason) == (Outcome.FAILURE, FailureReason.TIMEOUT)
    assert "timed out" in result.detail
    (hello,) = result.messages
    # 0.1 s, 0.2 s, 0.4 s: the ClientHello went out once and was retransmitted by the timer.
    assert hello.message == "dtls_client_hello" and hello.retransmissions >= 2
    assert hello.datagrams == hello.retransmissions + 1


def test_a_thing_refuses_a_trust_center_its_domain_ca_did_not_certify(world: World) -> None:
    from testbed import pki
    from testbed.node import material as M

    thing = world.make_thing("SN-PA")
    world.write_material()
    # The thing was sold with another domain's CA: the trust center's certificate does not
    # chain to it, so the thing stops in the handshake and sends nothing of its own.
    other = pki.new_domain("elsewhere")
    anchor = world.tmp / M.TRUST_CENTER_CA
    anchor.write_bytes(other.ca_cert.public_bytes(Encoding.DER))

    async def body() -> Any:
        async with running(world) as role:
            return await world.bootstrap(
                thing, port_of(role), profile_name="dtls-cert", coaps_port=coaps_port_of(role)
            )

    result = asyncio.run(body())
    assert (result.outcome, result.reason) == (Outcome.FAILURE, FailureReason.PEER_AUTHENTICATION)
    sent = [m.message for m in result.messages if m.direction == "sent"]
    assert "dtls_client_finished" not in sent and "dtls_application_data" not in sent
    registry = Registry.open(world.state)
    try:
        assert [t.state for t in registry.things()] == ["imported"]
    finally:
        registry.close()
