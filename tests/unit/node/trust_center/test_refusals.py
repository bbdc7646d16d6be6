"""Each admission failure: its own 4.03 reason code on the wire and its row in the registry."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiocoap
import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization as pki_encoding
from prometheus_client import CollectorRegistry, generate_latest

from testbed import pki
from testbed.node.bootstrap.profile import FailureReason, Outcome
from testbed.node.enrollment_api import (
    EST_SIMPLE_ENROLL,
    K_ADDRESS,
    K_CONTEXT,
    K_DEVICE_CLASS,
    K_NAME,
    K_PORT,
    K_SERIAL,
    K_THINGS,
    K_VENDOR,
    OSCORE_CONFIG,
    THINGS,
    OscoreContextGrant,
)
from testbed.node.trust_center.registry import REFUSED, Refusal, Registry

from .world import Thing, World, coaps_port_of, port_of, refusal, running


def _refusals(world: World) -> tuple[list[Refusal], dict[str, str]]:
    registry = Registry.open(world.state)
    try:
        return registry.refusals(), {t.serial: t.state for t in registry.things()}
    finally:
        registry.close()


PROFILES = ("edhoc-oscore", "dtls-cert", "dtls-psk")


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _enroll(
    world: World,
    thing: Thing,
    *,
    csr: bytes | None = None,
    profile: str = "edhoc-oscore",
    **kw: Any,
) -> tuple[Any, Any]:
    """Enroll with the profile and, separately, send the CSR ourselves to read the 4.03
    (dtls-*: a second bootstrap, whose result carries the code and the reason)."""

    async def body() -> tuple[Any, Any]:
        async with running(world, **kw) as role:
            dtls = {"profile_name": profile, "coaps_port": coaps_port_of(role)}
            result = await world.bootstrap(thing, port_of(role), csr=csr, **dtls)
            if profile != "edhoc-oscore":
                again = await world.bootstrap(thing, port_of(role), csr=csr, **dtls)
                return result, again
            raw = await world.request(
                thing.identity(),
                port_of(role),
                aiocoap.POST,
                EST_SIMPLE_ENROLL,
                thing.csr() if csr is None else csr,
                content_format=286,
            )
            return result, raw

    return asyncio.run(body())


def _assert_refused(world: World, thing: Thing, reason: str, **kw: Any) -> list[Refusal]:
    result, raw = _enroll(world, thing, **kw)
    assert (result.outcome, result.reason) == (Outcome.FAILURE, FailureReason.ENROLLMENT_REFUSED)
    assert result.detail.startswith("4.03") and reason in result.detail
    if isinstance(raw, aiocoap.Message):
        assert refusal(raw)[:2] == ("4.03", reason)
    else:
        assert (raw.code, raw.refusal) == ("4.03", reason)
    rows, states = _refusals(world)
    assert [(r.reason, r.serial, r.kid) for r in rows] == [(reason, thing.serial, thing.kid)] * 2
    assert states == {thing.serial: REFUSED}
    return rows


def test_untrusted_vendor(world: World, profile: str) -> None:
    thing = world.make_thing("SN-G1", vendor=world.globex)
    world.write_material()
    (row, _) = _assert_refused(world, thing, "vendor-not-trusted", profile=profile)
    assert row.vendor == "globex" and "globex" in row.detail


def test_voucher_naming_another_owner(world: World, profile: str) -> None:
    stranger = pki.new_domain("someone-else")
    thing = world.make_thing("SN-F1", owner=stranger.owner_public_key)
    world.write_material()
    _assert_refused(world, thing, "voucher-foreign-owner", profile=profile)


def test_idevid_signed_by_a_rogue_ca(world: World, profile: str) -> None:
    # A counterfeiter's CA that calls itself "acme": the name is trusted, the chain is not.
    rogue = pki.new_vendor("acme")
    thing = world.make_thing("SN-R1", maker=rogue)
    world.write_material()
    (row, _) = _assert_refused(world, thing, "idevid-invalid", profile=profile)
    assert "does not chain" in row.detail


def test_voucher_not_signed_by_the_vendor(world: World, profile: str) -> None:
    thing = world.make_thing("SN-V1")
    # The genuine device, with a voucher a rogue "acme" signed (its chain does not verify).
    rogue = pki.new_vendor("acme")
    forged = pki.manufacture(rogue, "SN-V1", "t-1000")
    thing.voucher = pki.issue_voucher(
        rogue,
        pki.DeviceIdentity("acme", "t-1000", "SN-V1", thing.device.key, forged.idevid, forged.ccs),
        world.domain.owner_public_key,
    )
    world.write_material()
    _assert_refused(world, thing, "voucher-invalid", profile=profile)


def test_revoked_thing(world: World, profile: str) -> None:
    thing = world.make_thing("SN-X1")
    world.write_material()

    async def body() -> tuple[Any, dict[str, Any], Any, aiocoap.Message]:
        async with running(world) as role:
            dtls = {"profile_name": profile, "coaps_port": coaps_port_of(role)}
            first = await world.bootstrap(thing, port_of(role), **dtls)
            revoked = await role.actions()["revoke"]({"serial": "SN-X1", "reason": "keyCompromise"})
            again = await world.bootstrap(thing, port_of(role), **dtls)
            config = await world.request(
                thing.identity(), port_of(role), aiocoap.GET, OSCORE_CONFIG
            )
            sessions = role.service.state()["edhoc_sessions"] if role.service else None
            return first, revoked, again, config, sessions

    first, revoked, again, config, sessions = asyncio.run(body())
    assert first.outcome is Outcome.SUCCESS
    assert revoked["previous_state"] == "enrolled" and len(revoked["revoked_certificates"]) == 1
    assert again.reason is FailureReason.ENROLLMENT_REFUSED and "revoked" in again.detail
    assert refusal(config)[:2] == ("4.03", "revoked")
    # The refusals were answered under the handshakes' contexts (the thing can trust them),
    # and those contexts were dropped at once: only the first, successful one is kept (a DTLS
    # profile's first bootstrap made no EDHOC session at all).
    assert sessions == (1 if profile == "edhoc-oscore" else 0)
    rows, states = _refusals(world)
    assert [r.reason for r in rows] == ["revoked", "revoked"] and states == {"SN-X1": "revoked"}


def test_csr_for_another_serial(world: World) -> None:
    thing = world.make_thing("SN-C1")
    world.write_material()
    rows = _assert_refused(world, thing, "bad-csr", csr=thing.csr(serial="SN-C2"))
    assert "SN-C2" in rows[0].detail


def test_garbage_csr(world: World) -> None:
    thing = world.make_thing("SN-C3")
    world.write_material()
    _assert_refused(world, thing, "bad-csr", csr=b"\x30\x03not a csr")


def test_unknown_kid_is_refused_at_the_handshake(world: World) -> None:
    known = world.make_thing("SN-K1")
    stranger = world.make_thing("SN-K2", imported=False)  # no device record at the trust center
    world.write_material()
    metrics = CollectorRegistry()

    async def body() -> Any:
        async with running(world, metrics=metrics) as role:
            return await world.bootstrap(stranger, port_of(role))

    result = asyncio.run(body())
    assert (result.outcome, result.reason) == (Outcome.FAILURE, FailureReason.HANDSHAKE_REFUSED)
    assert "4.01" in result.detail
    rows, states = _refusals(world)
    assert [(r.reason, r.kid, r.serial) for r in rows] == [("unknown-device", stranger.kid, None)]
    assert states == {known.serial: "imported"}
    assert 'testbed_tc_refusals_total{reason="unknown-device",vendor="unknown"} 1.0' in (
        generate_latest(metrics).decode()
    )


def test_unprotected_enrollment_is_4_01(world: World) -> None:
    thing = world.make_thing("SN-P1")
    world.write_material()

    async def body() -> aiocoap.Message:
        async with running(world) as role:
            context = await aiocoap.Context.create_client_context()
            try:
                request = aiocoap.Message(
                    code=aiocoap.POST,
                    uri=f"coap://[::1]:{port_of(role)}{EST_SIMPLE_ENROLL}",
                    payload=thing.csr(),
                    content_format=286,
                )
                response: aiocoap.Message = await context.request(request).response
                return response
            finally:
                await context.shutdown()

    assert asyncio.run(body()).code == aiocoap.UNAUTHORIZED
    rows, states = _refusals(world)
    assert rows == [] and states == {"SN-P1": "imported"}


def test_oscore_config_before_enrolling_is_not_enrolled(world: World) -> None:
    thing = world.make_thing("SN-N1")
    world.write_material()

    async def body() -> aiocoap.Message:
        async with running(world) as role:
            return await world.request(thing.identity(), port_of(role), aiocoap.GET, OSCORE_CONFIG)

    assert refusal(asyncio.run(body()))[:2] == ("4.03", "not-enrolled")
    assert [r.reason for r in _refusals(world)[0]] == ["not-enrolled"]


@pytest.mark.parametrize("as_thing", [True, False], ids=["thing", "backend"])
def test_things_only_for_backends(world: World, as_thing: bool) -> None:
    sensor = world.make_thing("SN-T1")
    other = world.make_thing("SN-T2")
    world.write_material()

    async def body() -> tuple[aiocoap.Message, aiocoap.Message]:
        async with running(world) as role:
            port = port_of(role)
            path = f"{EST_SIMPLE_ENROLL}?name=thermostat-01&class=sensor&port=5684"
            assert (await world.bootstrap(sensor, port, path=path)).outcome is Outcome.SUCCESS
            assert (await world.bootstrap(other, port)).outcome is Outcome.SUCCESS
            asker = sensor.identity() if as_thing else world.backend
            things = await world.request(asker, port, aiocoap.GET, THINGS)
            config = await world.request(sensor.identity(), port, aiocoap.GET, OSCORE_CONFIG)
            return things, config

    things, config = asyncio.run(body())
    if as_thing:
        assert refusal(things)[:2] == ("4.03", "not-authorized")
        assert [(r.reason, r.serial) for r in _refusals(world)[0]] == [("not-authorized", "SN-T1")]
        return
    assert things.code == aiocoap.CONTENT
    entries = {e[K_SERIAL]: e for e in cbor2.loads(things.payload)[K_THINGS]}
    assert sorted(entries) == ["SN-T1", "SN-T2"]
    entry = entries["SN-T1"]
    assert (entry[K_NAME], entry[K_DEVICE_CLASS], entry[K_VENDOR]) == (
        "thermostat-01",
        "sensor",
        "acme",
    )
    assert (entry[K_ADDRESS], entry[K_PORT]) == ("::1", 5684)
    assert entries["SN-T2"][K_NAME] == "SN-T2" and K_DEVICE_CLASS not in entries["SN-T2"]
    assert entries["SN-T2"][K_PORT] == 5683
    backend_view = OscoreContextGrant.from_cbor_map(entry[K_CONTEXT])
    thing_view = OscoreContextGrant.from_cbor_map(cbor2.loads(config.payload)[3][0])
    assert backend_view == replace(thing_view.mirrored(), purpose="backend")
    # Distinct things never share a context identifier.
    other_view = OscoreContextGrant.from_cbor_map(entries["SN-T2"][K_CONTEXT])
    assert {backend_view.sender_id, backend_view.recipient_id}.isdisjoint(
        {other_view.sender_id, other_view.recipient_id}
    )
    assert backend_view.id_context != other_view.id_context


@pytest.mark.parametrize(("vendor", "model"), [("globex", "t-1000"), ("acme", "door-lock-9")])
def test_csr_claiming_another_vendor_or_hardware_type(
    world: World, vendor: str, model: str
) -> None:
    # The serial is right, the key is the thing's own: only the vendor or hardware type lies,
    # and that claim would end up in the domain-signed LDevID.
    thing = world.make_thing("SN-C4")
    world.write_material()
    d = thing.device
    liar = pki.DeviceIdentity(vendor, model, d.serial, d.key, d.idevid, d.ccs)
    csr = bytes(pki.make_csr(liar).public_bytes(pki_encoding.Encoding.DER))
    rows = _assert_refused(world, thing, "bad-csr", csr=csr)
    assert ("vendor" if vendor != "acme" else "hw_type") in rows[0].detail


def test_ldevid_names_what_the_idevid_names(world: World) -> None:
    thing = world.make_thing("SN-C5")
    world.write_material()

    async def body() -> Any:
        async with running(world) as role:
            return await world.bootstrap(thing, port_of(role))

    result = asyncio.run(body())
    assert result.outcome is Outcome.SUCCESS, result.detail
    registry = Registry.open(world.state)
    try:
        (der,) = registry._db.execute("SELECT der FROM certificates").fetchone()
    finally:
        registry.close()
    issued = x509.load_der_x509_certificate(der)
    assert pki.device_name(issued.extensions, "LDevID") == pki.device_name(
        thing.device.idevid.extensions, "IDevID"
    )


def test_ccs_naming_another_device_is_idevid_invalid(world: World) -> None:
    # The record's own parts must agree: an IDevID for SN-C6 next to a CCS that names SN-C7
    # (the check compared the record's serial, read from the IDevID, with the IDevID).
    thing = world.make_thing("SN-C6")
    thing.device = replace(
        thing.device, ccs=replace(thing.device.ccs, subject=pki.device_urn("acme", "SN-C7"))
    )
    pki.write_files(thing.directory, pki.device_files(thing.device))
    world.write_material()
    (row, _) = _assert_refused(world, thing, "idevid-invalid")
    assert "SN-C7" in row.detail
