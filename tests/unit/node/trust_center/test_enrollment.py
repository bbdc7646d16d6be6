"""A good thing enrolls with the real profile over real EDHOC/OSCORE against the real role."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiocoap
import cbor2
from cryptography import x509
from prometheus_client import CollectorRegistry, generate_latest

from testbed import pki
from testbed.node import material as M
from testbed.node.bootstrap.profile import Outcome
from testbed.node.coap.credentials import Credential, EdhocIdentity
from testbed.node.enrollment_api import (
    CRL,
    EST_CA_CERTS,
    EST_SIMPLE_REENROLL,
    K_CONTEXT,
    K_CONTEXTS,
    K_THINGS,
    OSCORE_CONFIG,
    THINGS,
    OscoreContextGrant,
)
from testbed.node.trust_center import contexts
from testbed.node.trust_center.registry import ENROLLED, SUPERSEDED
from testbed.pki import keys

from .world import World, port_of, refusal, running


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_good_thing_enrolls_and_gets_its_oscore_context(world: World) -> None:
    thing = world.make_thing("SN-0001")
    world.write_material()
    metrics = CollectorRegistry()

    async def body() -> tuple[Any, aiocoap.Message, Any]:
        async with running(world, metrics=metrics) as role:
            result = await world.bootstrap(thing, port_of(role))
            config = await world.request(
                thing.identity(), port_of(role), aiocoap.GET, OSCORE_CONFIG
            )
            await asyncio.sleep(0.05)  # the bootstrap row is written right after the answer
            assert role.service is not None
            return result, config, role.service.registry

    result, config, _ = _run(body())
    assert result.outcome is Outcome.SUCCESS, result.detail
    assert result.enrollment is not None
    ldevid = x509.load_der_x509_certificate(result.enrollment.ldevid_der)
    name = pki.verify_device_cert(ldevid, world.domain.ca_cert)
    assert (name.serial, name.vendor) == ("SN-0001", "acme")
    assert ldevid.public_key() == thing.device.public_key  # the CSR was made with the factory key

    assert config.code == aiocoap.CONTENT
    grant_map, group_map = cbor2.loads(config.payload)[K_CONTEXTS]
    grant = OscoreContextGrant.from_cbor_map(grant_map)
    assert grant.purpose == "backend:backend-1" and grant.generation == 1
    assert len(grant.master_secret) == 16 and len(grant.master_salt) == 8
    assert grant.sender_id != grant.recipient_id
    # The domain's group key: the thing sends in the group under its own sender ID.
    group = OscoreContextGrant.from_cbor_map(group_map)
    assert (group.purpose, group.sender_id, group.recipient_id) == (
        "group",
        grant.sender_id,
        b"\x00",
    )
    assert group.id_context is not None and len(group.id_context) == 4
    assert group.master_secret != grant.master_secret and group.generation == 1

    from testbed.node.trust_center.registry import Registry

    registry = Registry.open(world.state)
    try:
        row = registry.thing("SN-0001")
        assert row is not None
        assert (row.state, row.address, row.vendor, row.model) == (
            ENROLLED,
            "::1",
            "acme",
            "t-1000",
        )
        assert row.ldevid_serial == ldevid.serial_number
        stored = row.grant()  # one context per thing; each backend's is derived from it
        assert stored is not None and contexts.for_backend(stored, "backend-1", 0) == grant
        assert stored.master_secret != grant.master_secret
        key = registry.group_key()  # kept in the registry: the same key for every member
        assert (key.group_id, key.master_secret) == (group.id_context, group.master_secret)
        assert registry.certificate_serials() == [ldevid.serial_number]
        (boot,) = registry.bootstraps()
        assert (boot.thing, boot.outcome, boot.resource) == (
            "SN-0001",
            "success",
            "/.well-known/est/sen",
        )
        assert boot.duration_s is not None and 0 < boot.duration_s < 10
        assert boot.bytes_in > len(thing.csr()) and boot.bytes_out > len(
            result.enrollment.ldevid_der
        )
        assert (boot.datagrams_in, boot.datagrams_out) == (2, 2)
        names = [(m["message"], m["direction"]) for m in boot.messages]
        assert names == [
            ("edhoc_message_1", "received"),
            ("edhoc_message_2", "sent"),
            ("edhoc_message_3+oscore_request", "received"),
            ("oscore_response", "sent"),
        ]
    finally:
        registry.close()

    text = generate_latest(metrics).decode()
    assert (
        'testbed_tc_enrollments_total{domain="hvac",model="t-1000",outcome="success",'
        'profile="edhoc-oscore",reason="",vendor="acme"} 1.0' in text
    )
    assert "testbed_tc_certificates_issued_total 1.0" in text
    assert 'testbed_tc_registry_things{state="enrolled"} 1.0' in text
    assert 'testbed_tc_bootstrap_duration_seconds_count{domain="hvac",model="t-1000"' in text
    assert 'testbed_tc_bootstrap_bytes_count{direction="received",domain="hvac"' in text
    assert "testbed_tc_edhoc_sessions" in text


def test_enrolling_again_keeps_one_row_and_supersedes_the_old_certificate(world: World) -> None:
    thing = world.make_thing("SN-0002")
    world.write_material()

    async def body() -> tuple[list[Any], bytes, dict[str, Any]]:
        async with running(world) as role:
            results = [await world.bootstrap(thing, port_of(role)) for _ in range(2)]
            results.append(await world.bootstrap(thing, port_of(role), path=EST_SIMPLE_REENROLL))
            crl = await world.request(thing.identity(), port_of(role), aiocoap.GET, CRL)
            assert role.service is not None
            return results, crl.payload, role.state()

    results, crl_der, state = _run(body())
    serials = []
    for result in results:
        assert result.outcome is Outcome.SUCCESS, result.detail
        serials.append(x509.load_der_x509_certificate(result.enrollment.ldevid_der).serial_number)
    assert serials == sorted(serials) and len(set(serials)) == 3
    assert state["things"] == {"imported": 0, "enrolled": 1, "refused": 0, "revoked": 0}
    assert state["certificates_issued"] == 3 and state["crl_entries"] == 2

    crl = x509.load_der_x509_crl(crl_der)
    pki.verify_crl(crl, world.domain.ca_cert)
    listed = {e.serial_number: e for e in crl}
    assert set(listed) == set(serials[:2])
    reason = listed[serials[0]].extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason.value == SUPERSEDED

    from testbed.node.trust_center.registry import Registry

    registry = Registry.open(world.state)
    try:
        (row,) = registry.things()
        assert (row.serial, row.ldevid_serial, row.enrollments) == ("SN-0002", serials[-1], 3)
        assert row.oscore_generation == 3
    finally:
        registry.close()


def test_reenroll_before_enrolling_is_refused_not_enrolled(world: World) -> None:
    thing = world.make_thing("SN-0003")
    world.write_material()

    async def body() -> aiocoap.Message:
        async with running(world) as role:
            return await world.request(
                thing.identity(),
                port_of(role),
                aiocoap.POST,
                EST_SIMPLE_REENROLL,
                thing.csr(),
                content_format=286,
            )

    assert refusal(_run(body()))[:2] == ("4.03", "not-enrolled")


def test_ca_certificate_and_crl_are_served_protected_and_plain(world: World) -> None:
    world.write_material()

    async def body() -> tuple[bytes, bytes]:
        async with running(world) as role:
            context = await aiocoap.Context.create_client_context()
            try:
                base = f"coap://[::1]:{port_of(role)}"
                crts = await context.request(
                    aiocoap.Message(code=aiocoap.GET, uri=base + EST_CA_CERTS)
                ).response
                crl = await context.request(
                    aiocoap.Message(code=aiocoap.GET, uri=base + CRL)
                ).response
            finally:
                await context.shutdown()
            return crts.payload, crl.payload

    crts, crl = _run(body())
    assert x509.load_der_x509_certificate(crts) == world.domain.ca_cert
    pki.verify_crl(x509.load_der_x509_crl(crl), world.domain.ca_cert)


def test_every_backend_gets_its_own_context_with_a_thing(world: World) -> None:
    """Two backends of one domain must not share a context: both would count sequence numbers
    from zero under one key and sender ID (AES-CCM nonce reuse, RFC 8613 Section 7.2), and the
    thing's replay window would refuse whichever one came second."""
    thing = world.make_thing("SN-0001")
    world.write_material()
    second_key = keys.generate()
    second_ccs = pki.Ccs("urn:testbed:host:backend-2", b"\xbb\x02", second_key.public_key())
    (world.material / M.BACKENDS_DIR / "backend-2.ccs.cbor").write_bytes(second_ccs.to_bytes())
    second = EdhocIdentity(second_key, Credential.from_cbor(second_ccs.to_bytes()))

    async def body() -> tuple[aiocoap.Message, aiocoap.Message, aiocoap.Message]:
        async with running(world) as role:
            port = port_of(role)
            assert (await world.bootstrap(thing, port)).outcome is Outcome.SUCCESS
            config = await world.request(thing.identity(), port, aiocoap.GET, OSCORE_CONFIG)
            first_list = await world.request(world.backend, port, aiocoap.GET, THINGS)
            second_list = await world.request(second, port, aiocoap.GET, THINGS)
            return config, first_list, second_list

    config, first_list, second_list = asyncio.run(body())
    grants = {
        g.purpose: g
        for g in map(OscoreContextGrant.from_cbor_map, cbor2.loads(config.payload)[K_CONTEXTS])
    }
    assert set(grants) == {"backend:backend-1", "backend:backend-2", "group"}
    one, two = grants["backend:backend-1"], grants["backend:backend-2"]
    assert one.sender_id == two.sender_id  # the thing answers under its own ID ...
    assert one.recipient_id != two.recipient_id  # ... and tells the backends apart by theirs
    assert one.master_secret != two.master_secret and one.generation == two.generation == 1
    for listing, grant in ((first_list, one), (second_list, two)):
        (entry,) = cbor2.loads(listing.payload)[K_THINGS]
        seen = OscoreContextGrant.from_cbor_map(entry[K_CONTEXT])
        assert seen == replace(grant.mirrored(), purpose="backend")  # its own, nobody else's
