"""Control actions: import-device (idempotent) and revoke (registry + CRL)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiocoap
import pytest
from cryptography import x509

from testbed import pki
from testbed.errors import PkiError
from testbed.node.bootstrap.profile import FailureReason, Outcome
from testbed.node.enrollment_api import CRL
from testbed.node.errors import ActionError

from .world import Thing, World, port_of, running


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _params(thing: Thing) -> dict[str, Any]:
    files = {name.rsplit("/", 1)[1]: data for name, data in thing.record_files().items()}
    return {
        "serial": thing.serial,
        "voucher": _b64(files["voucher.cbor"]),
        "idevid": _b64(files["idevid.crt.der"]),
        "ccs": _b64(files["device.ccs.cbor"]),
    }


def test_import_device_is_idempotent_and_admits_the_thing(world: World) -> None:
    world.write_material()
    late = world.make_thing("SN-L1", imported=False)

    async def body() -> tuple[list[dict[str, Any]], Any, Any]:
        async with running(world) as role:
            before = await world.bootstrap(late, port_of(role))
            action = role.actions()["import-device"]
            results = [await action(_params(late)) for _ in range(2)]
            after = await world.bootstrap(late, port_of(role))
            return results, before, after

    results, before, after = asyncio.run(body())
    assert before.reason is FailureReason.HANDSHAKE_REFUSED
    assert [r["changed"] for r in results] == [True, False]
    assert results[0] | {"changed": False} == results[1] | {"state": "imported"}
    assert results[0]["kid"] == late.kid.hex() and results[0]["vendor"] == "acme"
    assert after.outcome is Outcome.SUCCESS, after.detail
    assert (
        world.state / "devices" / "SN-L1" / "voucher.cbor"
    ).read_bytes() == late.voucher.to_bytes()

    # The imported record survives a restart (it lives on the volume, not in the material).
    async def restarted() -> dict[str, Any]:
        async with running(world) as role:
            return role.state()

    state = asyncio.run(restarted())
    assert state["device_records"] == 1 and state["things"]["enrolled"] == 1


def test_import_device_refuses_bad_input(world: World) -> None:
    first = world.make_thing("SN-B1")
    world.write_material()
    clone = world.make_thing("SN-B2", imported=False)
    # Same kid as SN-B1: a second credential under one kid would make peers ambiguous.
    clone.device = pki.manufacture(world.acme, "SN-B2", "t-1000", kid=first.kid)
    clone.voucher = pki.issue_voucher(world.acme, clone.device, world.domain.owner_public_key)

    async def body() -> list[str]:
        errors = []
        async with running(world) as role:
            action = role.actions()["import-device"]
            for params in (
                {**_params(first), "voucher": "not base64!"},
                {**_params(first), "serial": "SN-OTHER"},
                {k: v for k, v in _params(first).items() if k != "ccs"},
                _params(clone),
            ):
                with pytest.raises(ActionError) as err:
                    await action(params)
                errors.append(err.value.message)
        return errors

    errors = asyncio.run(body())
    assert "not base64" in errors[0]
    assert "SN-OTHER" in errors[1]
    assert "'ccs'" in errors[2]
    assert "is taken by SN-B1" in errors[3]


def test_revoke_updates_registry_and_crl(world: World) -> None:
    things = [world.make_thing(f"SN-D{i}") for i in range(2)]
    world.write_material()

    async def body() -> tuple[list[Any], list[dict[str, Any]], bytes]:
        async with running(world) as role:
            results = [await world.bootstrap(t, port_of(role)) for t in things]
            revoke = role.actions()["revoke"]
            outcomes = [
                await revoke({"serial": "SN-D0", "reason": "cessationOfOperation"}),
                await revoke({"serial": "SN-D0"}),  # again: nothing new, same CRL
                await revoke({"serial": "SN-D1", "reason": "key_compromise"}),
            ]
            for bad in ({"serial": "SN-NONE"}, {"serial": "SN-D1", "reason": "bored"}, {}):
                with pytest.raises(ActionError):
                    await revoke(bad)
            crl = await world.request(world.backend, port_of(role), aiocoap.GET, CRL)
            return results, outcomes, crl.payload

    results, outcomes, crl_der = asyncio.run(body())
    ldevids = [x509.load_der_x509_certificate(r.enrollment.ldevid_der) for r in results]
    assert outcomes[0]["revoked_certificates"] == [ldevids[0].serial_number]
    assert outcomes[1]["revoked_certificates"] == []
    assert outcomes[1]["crl_number"] == outcomes[0]["crl_number"]
    assert outcomes[2]["crl_number"] > outcomes[0]["crl_number"]
    assert outcomes[2]["reason"] == "keyCompromise" and outcomes[2]["crl_entries"] == 2

    crl = x509.load_der_x509_crl(crl_der)
    pki.verify_crl(crl, world.domain.ca_cert)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == outcomes[2]["crl_number"]
    for ldevid in ldevids:
        assert pki.is_revoked(ldevid, crl)
        with pytest.raises(PkiError, match="revoked"):
            pki.verify_device_cert(ldevid, world.domain.ca_cert, crl=crl)
