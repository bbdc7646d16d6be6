"""Group commands under the domain's group key (Group OSCORE group mode, real aiocoap crypto):
every current member reads one command; a member that left cannot read the next generation;
a member cannot forge a command; a replayed command is refused; and one protected command
crosses the emulated radio PAN as one broadcast burst that every station reassembles."""

from __future__ import annotations

import ipaddress
from typing import Any

import cbor2
import pytest
from aiocoap.numbers.types import Type

from testbed.node.coap import group
from testbed.node.coap.credentials import EdhocIdentity
from testbed.node.radio.addressing import BROADCAST
from testbed.node.trust_center import contexts
from tests.unit.node.radio.packets import udp6
from tests.unit.node.radio.pan import Pan

OFF = cbor2.dumps({"on": False})


def key(generation: int) -> group.GroupKey:
    group_id, secret, salt = contexts.fresh_group()
    return group.GroupKey(group_id, secret, salt, generation)


@pytest.fixture(scope="module")
def parties() -> dict[str, EdhocIdentity]:
    names = ("tc", "backend", "t1", "t2", "t3")
    return {name: EdhocIdentity.generate(bytes([i + 0x20])) for i, name in enumerate(names)}


def commander(parties: dict[str, EdhocIdentity], k: group.GroupKey) -> Any:
    backend = parties["backend"]
    return group.commander(
        k, backend.private_key, backend.credential.encoded, parties["tc"].credential.encoded
    )


def member(parties: dict[str, EdhocIdentity], name: str, k: group.GroupKey, index: int) -> Any:
    me = parties[name]
    peers = {group.GROUP_COMMANDER_ID: parties["backend"].credential.encoded}
    return group.context(
        k,
        contexts.ids_for(index).thing_id,
        me.private_key,
        me.credential.encoded,
        peers,
        parties["tc"].credential.encoded,
    )


def test_every_member_reads_one_command(parties: dict[str, EdhocIdentity]) -> None:
    k = key(1)
    datagram = group.protect(commander(parties, k), group.command("light", OFF))
    for index, name in enumerate(("t1", "t2", "t3"), start=1):
        plain = group.unprotect([member(parties, name, k, index)], datagram)
        assert plain.code.name == "PUT"
        assert plain.opt.uri_path == ("light",)
        assert cbor2.loads(plain.payload) == {"on": False}
        assert plain.opt.no_response == group.NO_RESPONSE_ALL
    # The payload is not on the wire in clear.
    assert OFF not in datagram


def test_a_revoked_member_cannot_read_the_next_generation(
    parties: dict[str, EdhocIdentity],
) -> None:
    old, new = key(1), key(2)
    datagram = group.protect(commander(parties, new), group.command("light", OFF))
    assert group.unprotect([member(parties, "t1", new, 1)], datagram)
    revoked = member(parties, "t3", old, 3)
    with pytest.raises(group.GroupRefused) as refused:
        group.unprotect([revoked], datagram)
    assert refused.value.reason == "foreign-group"
    # Even told the new group id (it is on the wire), the old secret does not decrypt it.
    guessed = group.GroupKey(new.group_id, old.master_secret, old.master_salt, 2)
    with pytest.raises(group.GroupRefused) as refused:
        group.unprotect([member(parties, "t3", guessed, 3)], datagram)
    assert refused.value.reason == "invalid"


def test_a_member_cannot_forge_a_command(parties: dict[str, EdhocIdentity]) -> None:
    k = key(1)
    # t2 holds the group key and claims the commander's sender ID, signing with its own key.
    t2 = parties["t2"]
    forger = group.context(
        k,
        group.GROUP_COMMANDER_ID,
        t2.private_key,
        t2.credential.encoded,
        {},
        parties["tc"].credential.encoded,
    )
    datagram = group.protect(forger, group.command("light", OFF))
    with pytest.raises(group.GroupRefused) as refused:
        group.unprotect([member(parties, "t1", k, 1)], datagram)
    assert refused.value.reason == "invalid"  # the signature does not verify


def test_a_replayed_command_is_refused(parties: dict[str, EdhocIdentity]) -> None:
    k = key(1)
    datagram = group.protect(commander(parties, k), group.command("light", OFF))
    t1 = member(parties, "t1", k, 1)
    group.unprotect([t1], datagram)
    with pytest.raises(group.GroupRefused) as refused:
        group.unprotect([t1], datagram)
    assert refused.value.reason == "replay"


def test_garbage_and_pairwise_requests_are_refused(parties: dict[str, EdhocIdentity]) -> None:
    t1 = member(parties, "t1", key(1), 1)
    plain = group.command("light", OFF)
    plain.mtype, plain.mid = plain.mtype or Type.NON, 1
    for datagram in (b"", b"\x50\x03\x00\x01", plain.encode()):
        with pytest.raises(group.GroupRefused) as refused:
            group.unprotect([t1], datagram)
        assert refused.value.reason == "not-oscore"


def test_one_command_crosses_the_pan_as_one_broadcast_burst(
    parties: dict[str, EdhocIdentity],
) -> None:
    k = key(1)
    pan = Pan(n=4)  # n0 is the border router, n1..n3 the members
    datagram = group.protect(commander(parties, k), group.command("light", OFF))
    src = ipaddress.IPv6Address("fd00::ff:fe00:1").packed
    dst = ipaddress.IPv6Address(group.ALL_COAP_NODES_SITE).packed
    packet = udp6(src, dst, 5683, 5683, datagram)
    frames = pan.stations["n0"].send(packet, BROADCAST)
    for frame in frames:
        assert pan.medium.submit("n0", frame, 0.0) is None
    pan.run()
    nodes: Any = pan.medium.snapshot()["nodes"]
    assert nodes["n0"]["transmissions"] == len(frames)  # sent once, heard by all three
    got = {name: pkt for _, name, pkt in pan.received}
    assert sorted(got) == ["n1", "n2", "n3"]
    for index, name in enumerate(("t1", "t2", "t3"), start=1):
        payload = got[f"n{index}"][48:]  # IPv6 + UDP headers
        plain = group.unprotect([member(parties, name, k, index)], payload)
        assert cbor2.loads(plain.payload) == {"on": False}
