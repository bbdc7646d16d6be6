"""Ownership transfer: the old owner extends the voucher to the next owner, decommissions and
revokes; the next owner's trust center imports the voucher and commissions the thing; the old
domain's keys are refused."""

from __future__ import annotations

import asyncio
from typing import Any

import aiocoap
import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from testbed import pki
from testbed.errors import PkiError
from testbed.node.errors import ActionError, LifecycleError
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.thing import owner, store
from tests.unit.node.thing.world import (
    DOMAIN,
    Client,
    World,
    by_name,
    eventually,
    listing,
    sample,
)

NEXT = "lighting"


def test_a_thing_moves_to_the_next_owner_and_the_old_domain_is_locked_out(world: World) -> None:
    thing = world.make_thing("thermostat-01")
    lighting = world.operator(NEXT)
    registry = CollectorRegistry()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with world.trust_center() as hvac, world.trust_center(NEXT) as light:
            role = world.thing_role(thing, registry)
            await role.start()
            host = world.backend_role(domains=(DOMAIN, NEXT))
            try:
                await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
                await host.start()
                assert host.backend is not None
                backend = host.backend
                await eventually(lambda: "thermostat-01" in by_name(backend))
                old_entry = (await listing(world))["thermostat-01"]

                # The old owner hands the thing over: voucher extended to the next owner key.
                extended = pki.extend_voucher(
                    thing.voucher, world.domain.owner_key, lighting.domain.owner_public_key
                )
                imported = light.actions()["import-device"]
                out["import"] = await imported(thing.record_params(extended))
                out["import_again"] = await imported(thing.record_params(extended))
                with pytest.raises(LifecycleError, match="decommission it first"):
                    await role.actions()["transfer"](lighting.transfer_params())
                await role.actions()["decommission"]({})
                await hvac.actions()["revoke"]({"serial": thing.serial})

                out["transfer"] = await role.actions()["transfer"](lighting.transfer_params())
                out["transfer_again"] = await role.actions()["transfer"](lighting.transfer_params())
                out["commission"] = await role.actions()["commission"]({"timeout": 60})
                out["ldevid"] = x509.load_der_x509_certificate(
                    (thing.state / store.LDEVID).read_bytes()
                )
                # Listed by the next owner only: until the backend polls the old owner's trust
                # center again, it still holds the old peer too, and a read by name is then
                # refused as ambiguous ("2 things are listed as ...").
                await eventually(
                    lambda: (
                        [
                            p.entry.domain
                            for p in backend.peers.values()
                            if p.entry.name == "thermostat-01"
                        ]
                        == [NEXT]
                    )
                )
                out["read"] = await host.actions()["read"](
                    {"thing": "thermostat-01", "resource": "temperature"}
                )
                assert role.server is not None
                port = role.server.port
                async with Client(old_entry, world.tmp / "old-domain", port) as old:
                    out["old_context"] = await old.request(aiocoap.GET, "temperature")
                out["hvac_listing"] = await listing(world)
                out["light_listing"] = await listing(world, NEXT)
                out["light_devices"] = await light.actions()["devices"]({})
            finally:
                await host.stop()
                await role.stop()

            # A restart keeps the new owner: the volume overrides node.json's attributes.
            again = world.thing_role(thing)
            await again.start()
            try:
                out["restarted"] = await again.actions()["status"]({})
            finally:
                await again.stop()
        return out

    out = asyncio.run(scenario())
    assert (out["import"]["changed"], out["import"]["voucher_links"]) == (True, 2)
    assert out["import_again"]["changed"] is False

    transfer = out["transfer"]
    assert (transfer["changed"], transfer["lifecycle"], transfer["reason"]) == (
        True,
        "installed",
        "transferred",
    )
    assert (transfer["domain"], transfer["trust_center_uri"]) == (NEXT, lighting.tc_uri)
    assert out["transfer_again"]["changed"] is False

    commission = out["commission"]
    assert (commission["lifecycle"], commission["domain"], commission["generation"]) == (
        "operational",
        NEXT,
        1,
    )
    # The LDevID now comes from the next owner's domain CA.
    name = pki.verify_device_cert(out["ldevid"], lighting.domain.ca_cert)
    assert name.serial == thing.serial
    with pytest.raises(PkiError):
        pki.verify_device_cert(out["ldevid"], world.domain.ca_cert)

    assert (out["read"]["outcome"], out["read"]["generation"]) == ("ok", 1)
    # Refused unprotected. Both registries gave the thing index 1 and generation 1, so the
    # old context's IDs exist again under another secret: "decryption failed" (4.00) rather
    # than "unknown context" (4.01); either way no handler runs.
    assert out["old_context"].code in ("4.00", "4.01") and not out["old_context"].protected
    assert "thermostat-01" not in out["hvac_listing"]
    assert out["light_listing"]["thermostat-01"].serial == thing.serial
    (device,) = out["light_devices"]["devices"]
    assert (device["state"], device["voucher_links"]) == ("enrolled", 2)

    restarted = out["restarted"]
    assert (restarted["domain"], restarted["lifecycle"]) == (NEXT, "operational")
    # Bootstrap metrics carry the domain the thing belongs to now.
    labels = {"vendor": "acme", "model": "t-1000", "profile": "edhoc-oscore"}
    after = {**labels, "domain": NEXT, "outcome": "success", "reason": "none"}
    assert sample(registry, "testbed_bootstrap_attempts_total", **after) == 1
    assert world.failures == []


def test_transfer_checks_its_parameters(world: World) -> None:
    thing = world.make_thing("thermostat-01")
    good = world.operator(NEXT).transfer_params()

    async def scenario() -> None:
        role = world.thing_role(thing, **{"auto-commission": "false"})
        await role.start()
        try:
            transfer = role.actions()["transfer"]
            for bad in (
                {},
                {**good, "domain": "a b"},
                {**good, "trust_center_uri": "http://x"},
                {**good, "trust_center_ccs": "not base64!"},
                {**good, "trust_center_ccs": "AAAA"},
            ):
                with pytest.raises(ActionError):
                    await transfer(bad)
            assert not (thing.state / owner.INDEX).exists()
        finally:
            await role.stop()

    asyncio.run(scenario())
