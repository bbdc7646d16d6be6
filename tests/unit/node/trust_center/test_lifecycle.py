"""The trust center's side of the lifecycle: group key, revocation as the end of a thing in this
domain, reinstatement by a new voucher, the devices and status actions, schema upgrade."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from typing import Any

import aiocoap
import cbor2
from prometheus_client import CollectorRegistry

from testbed import pki
from testbed.node.bootstrap.profile import Outcome
from testbed.node.enrollment_api import K_CONTEXTS, OSCORE_CONFIG, OscoreContextGrant
from testbed.node.errors import ActionError
from testbed.node.trust_center.registry import Registry
from testbed.node.trust_center.schema import SCHEMA_VERSION

from .world import Thing, World, port_of, running


def _params(thing: Thing, voucher: pki.Voucher | None = None) -> dict[str, Any]:
    files = {name.rsplit("/", 1)[1]: data for name, data in thing.record_files().items()}
    if voucher is not None:
        files["voucher.cbor"] = voucher.to_bytes()
    return {
        "serial": thing.serial,
        **{
            key: base64.b64encode(files[name]).decode()
            for key, name in (
                ("voucher", "voucher.cbor"),
                ("idevid", "idevid.crt.der"),
                ("ccs", "device.ccs.cbor"),
            )
        },
    }


def _grants(message: aiocoap.Message) -> dict[str, OscoreContextGrant]:
    items = cbor2.loads(message.payload)[K_CONTEXTS]
    return {g.purpose: g for g in map(OscoreContextGrant.from_cbor_map, items)}


def test_every_member_gets_the_same_group_key_and_it_survives_a_restart(world: World) -> None:
    one, two = world.make_thing("SN-0001"), world.make_thing("SN-0002")
    world.write_material()

    async def body() -> list[dict[str, OscoreContextGrant]]:
        out = []
        async with running(world) as role:
            for thing in (one, two):
                assert (await world.bootstrap(thing, port_of(role))).outcome is Outcome.SUCCESS
                out.append(
                    _grants(
                        await world.request(
                            thing.identity(), port_of(role), aiocoap.GET, OSCORE_CONFIG
                        )
                    )
                )
        async with running(world) as role:
            out.append(
                _grants(
                    await world.request(one.identity(), port_of(role), aiocoap.GET, OSCORE_CONFIG)
                )
            )
        return out

    first, second, restarted = asyncio.run(body())
    group = first["group"]
    assert second["group"].master_secret == group.master_secret == restarted["group"].master_secret
    assert second["group"].id_context == group.id_context
    # Each member sends under its own ID in the group (its backend-context sender ID).
    assert group.sender_id == first["backend:backend-1"].sender_id != second["group"].sender_id
    assert group.recipient_id == b"\x00" and group.generation == 1


def test_a_revoked_member_leaves_the_remaining_ones_a_new_group_key(world: World) -> None:
    """The member that leaves keeps what it was given; the others get a fresh group key (new
    group id and secret, generation 2) with their next contexts."""
    leaver, stayer = world.make_thing("SN-0001"), world.make_thing("SN-0002")
    world.write_material()
    metrics = CollectorRegistry()

    def gauge() -> float | None:
        return metrics.get_sample_value("testbed_tc_group_key_generation")

    async def body() -> dict[str, Any]:
        out: dict[str, Any] = {"gauge": [gauge()]}
        async with running(world, metrics=metrics) as role:
            port = port_of(role)
            out["gauge"].append(gauge())
            for thing in (leaver, stayer):
                assert (await world.bootstrap(thing, port)).outcome is Outcome.SUCCESS
            config = await world.request(stayer.identity(), port, aiocoap.GET, OSCORE_CONFIG)
            out["before"] = _grants(config)["group"]
            out["gauge"].append(gauge())
            out["revoke"] = await role.actions()["revoke"]({"serial": leaver.serial})
            out["gauge"].append(gauge())
            config = await world.request(stayer.identity(), port, aiocoap.GET, OSCORE_CONFIG)
            out["after"] = _grants(config)["group"]
            out["state"] = role.state()
        return out

    out = asyncio.run(body())
    before, after = out["before"], out["after"]
    assert (before.generation, after.generation) == (1, 2)
    assert after.master_secret != before.master_secret and after.id_context != before.id_context
    assert after.sender_id == before.sender_id  # the member's own ID in the group stays
    assert out["revoke"]["group_key_generation"] == 2
    assert out["state"]["group_key_generation"] == 2
    # The gauge: absent before the role, 0 until a member asks, then 1, then 2.
    assert out["gauge"] == [None, 0, 1, 2]


def _high_s_voucher(voucher: pki.Voucher) -> pki.Voucher:
    """The same chain with every link's signature malleated to high-S: new bytes, made from
    the public record alone, valid ECDSA for a verifier that does not insist on low-S."""
    links = []
    for link in voucher.links:
        item = cbor2.loads(link)
        protected, unprotected, payload, signature = item.value
        s = int.from_bytes(signature[32:], "big")
        flipped = signature[:32] + (pki.cose.P256_ORDER - s).to_bytes(32, "big")
        links.append(cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, flipped])))
    return pki.Voucher(tuple(links))


def test_revocation_is_final_whatever_voucher_bytes_come_later(world: World) -> None:
    thing = world.make_thing("SN-0001")
    world.write_material()
    elsewhere = pki.new_domain("elsewhere")

    async def body() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with running(world) as role:
            port = port_of(role)
            imp = role.actions()["import-device"]
            assert (await world.bootstrap(thing, port)).outcome is Outcome.SUCCESS
            revoke = role.actions()["revoke"]
            out["revoke"] = await revoke({"serial": thing.serial})
            out["revoke_again"] = await revoke({"serial": thing.serial})
            out["enroll"] = await world.bootstrap(thing, port)
            out["same_record"] = await imp(_params(thing))
            # Anyone can make new voucher bytes from the public record: high-S signatures.
            out["malleated"] = await _action_error(
                imp(_params(thing, _high_s_voucher(thing.voucher)))
            )
            # It went to another owner and came back: A -> elsewhere -> A. Still final.
            away = pki.extend_voucher(
                thing.voucher, world.domain.owner_key, elsewhere.owner_public_key
            )
            back = pki.extend_voucher(away, elsewhere.owner_key, world.domain.owner_public_key)
            out["returned"] = await _action_error(imp(_params(thing, back)))
            out["enroll_after"] = await world.bootstrap(thing, port)
            out["devices"] = await role.actions()["devices"]({})
            out["status"] = await role.actions()["status"]({})
        # And after a restart, from the records on the volumes.
        async with running(world) as role:
            out["enroll_restarted"] = await world.bootstrap(thing, port_of(role))
        return out

    out = asyncio.run(body())
    assert (out["revoke"]["changed"], out["revoke"]["state"]) == (True, "revoked")
    assert out["revoke_again"]["changed"] is False
    assert out["revoke_again"]["revoked_certificates"] == []
    assert out["enroll"].outcome is Outcome.FAILURE and "revoked" in out["enroll"].detail
    assert (out["same_record"]["changed"], out["same_record"]["reinstated"]) == (False, False)
    assert out["same_record"]["state"] == "revoked"
    for refused in (out["malleated"], out["returned"]):
        assert "revocation is final" in refused, refused
    for later in (out["enroll_after"], out["enroll_restarted"]):
        assert later.outcome is Outcome.FAILURE and "revoked" in later.detail, later.detail
    (device,) = out["devices"]["devices"]
    assert (device["serial"], device["state"], device["enrollments"]) == ("SN-0001", "revoked", 1)
    assert device["voucher_links"] == 1
    status = out["status"]
    assert status["things"]["revoked"] == 1 and status["things"]["imported"] == 0


async def _action_error(call: Any) -> str:
    try:
        await call
    except ActionError as exc:
        return str(exc)
    raise AssertionError("the import was accepted")


def test_a_version_1_registry_is_upgraded_in_place(world: World) -> None:
    registry = Registry.open(world.state)
    registry.close()
    db = sqlite3.connect(world.state / "registry.sqlite")
    db.execute("DROP TABLE group_keys")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()

    upgraded = Registry.open(world.state)
    try:
        key = upgraded.group_key()
        assert upgraded.group_key() == key  # created once, then kept
        (version,) = upgraded._db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        assert int(version) == SCHEMA_VERSION == 3
    finally:
        upgraded.close()
