"""A thing's way from installed to operational (or failed) against the real trust center."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry

from testbed import bringup, pki
from testbed.node.errors import ActionError, ServeError
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.thing import store
from testbed.node.thing.status import ThingStatus
from tests.unit.node.thing.world import DOMAIN, World, eventually, sample

IDENT = {"vendor": "acme", "model": "t-1000", "domain": DOMAIN, "profile": "edhoc-oscore"}


def test_installed_thing_becomes_operational_with_a_valid_ldevid(world: World) -> None:
    thing = world.make_thing("thermostat-01")
    registry = CollectorRegistry()

    async def scenario() -> dict[str, Any]:
        async with world.trust_center():
            role = world.thing_role(thing, registry)
            await role.start()
            try:
                # Serving follows right after the move to operational.
                await eventually(lambda: role.server is not None)
                return role.state()
            finally:
                await role.stop()

    state = asyncio.run(scenario())
    assert (state["lifecycle"], state["lifecycle_transitions"]) == ("operational", 2)
    assert state["reason"] is None

    ldevid = x509.load_der_x509_certificate((thing.state / store.LDEVID).read_bytes())
    assert pki.verify_device_cert(ldevid, world.domain.ca_cert).serial == thing.serial
    key = serialization.load_pem_private_key(
        (thing.state / store.OPERATIONAL_KEY).read_bytes(), None
    )
    # The LDevID certifies the operational key made on the volume, not the factory key.
    assert ldevid.public_key() == key.public_key() != thing.device.key.public_key()
    for path in thing.state.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path

    report = state["bootstrap"]
    assert (report["outcome"], report["attempt"], report["oscore_contexts"]) == (
        "success",
        1,
        ["backend:backend-1", "group"],
    )
    # The group key is kept on the volume; only the pairwise backend context is served.
    assert set(store.ThingStore(thing.state).load_operational().contexts) == {
        "backend:backend-1",
        "group",
    }
    assert list(state["coap"]["contexts"]) == ["backend:backend-1"]
    sizes = {m["message"]: m["message_bytes"] for m in report["messages"]}
    # One-byte kids: RFC 9529's sizes for message_1..3.
    assert (
        sizes["edhoc_message_1"],
        sizes["edhoc_message_2"],
        sizes["edhoc_message_3+oscore_request"],
    ) == (38, 45, 19)
    assert report["retransmissions"] == 0
    assert json.loads((thing.state / store.LAST_RESULT).read_text())["outcome"] == "success"

    assert (
        sample(
            registry, "testbed_bootstrap_attempts_total", **IDENT, outcome="success", reason="none"
        )
        == 1
    )
    assert sample(registry, "testbed_bootstrap_duration_seconds_count", **IDENT) == 1
    sent = sum(m["bytes"] for m in report["messages"] if m["direction"] == "sent")
    assert sample(registry, "testbed_bootstrap_bytes_sum", **IDENT, direction="sent") == sent
    datagrams = sum(m["datagrams"] for m in report["messages"] if m["direction"] == "received")
    assert (
        sample(registry, "testbed_bootstrap_datagrams_total", **IDENT, direction="received")
        == datagrams
    )
    assert sample(registry, "testbed_bootstrap_retransmissions_total", **IDENT) == 0
    assert sample(registry, "testbed_thing_lifecycle_state", state="operational") == 1
    assert world.failures == []


def test_operational_state_survives_a_restart_without_a_new_bootstrap(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> tuple[bytes, bytes, dict[str, Any], int]:
        async with world.trust_center() as tc:
            first = world.thing_role(thing)
            await first.start()
            await eventually(lambda: first.lifecycle.state is S.OPERATIONAL)
            await first.stop()
            ldevid = (thing.state / store.LDEVID).read_bytes()
            index = (thing.state / store.INDEX).read_bytes()

            registry = CollectorRegistry()
            second = world.thing_role(thing, registry)
            await second.start()
            try:
                assert second.server is not None and second.server.serving
                assert second.bootstrapper is not None and not second.bootstrapper.running
                attempts = sample(
                    registry,
                    "testbed_bootstrap_attempts_total",
                    **IDENT,
                    outcome="success",
                    reason="none",
                )
                assert tc.service is not None
                return ldevid, index, second.state(), int(attempts)
            finally:
                await second.stop()

    ldevid, index, state, attempts = asyncio.run(scenario())
    assert state["lifecycle"] == "operational" and state["lifecycle_transitions"] == 2
    assert attempts == 0 and state["bootstrap_run"]["attempts"] == 0
    # The last bootstrap's report is still there, from the volume.
    assert state["bootstrap"]["attempt"] == 1 and state["bootstrap"]["outcome"] == "success"
    assert (thing.state / store.LDEVID).read_bytes() == ldevid
    assert (thing.state / store.INDEX).read_bytes() == index


def test_a_refused_thing_fails_with_the_reason_and_does_not_retry(world: World) -> None:
    thing = world.make_thing("thermostat-01", foreign_owner=True)
    registry = CollectorRegistry()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with world.trust_center():
            role = world.thing_role(thing, registry)
            await role.start()
            await eventually(lambda: role.lifecycle.state is S.FAILED)
            await asyncio.sleep(1.5)  # longer than the longest retry wait (1 s)
            state, status = role.state(), role.status()
            await role.stop()
            again = world.thing_role(thing)
            await again.start()
            try:
                await asyncio.sleep(0.3)
                return state, status, again.state()
            finally:
                await again.stop()

    state, status, after_restart = asyncio.run(scenario())
    # GET /state and the status action carry one record, under the same keys.
    assert ThingStatus.parse(state) == ThingStatus.parse(status) is not None
    assert state["lifecycle"] == "failed"
    assert state["reason"] == "voucher-foreign-owner"
    # What `testbed status` and `testbed up` read from GET /state is what the thing says.
    assert bringup.lifecycle_of({"state": state}) == ("failed", "voucher-foreign-owner")
    assert state["bootstrap"]["code"] == "4.03"
    assert state["bootstrap"]["refusal"] == "voucher-foreign-owner"
    assert state["bootstrap_run"] == {"running": False, "attempts": 1, "next_attempt_in_s": None}
    labels = {**IDENT, "outcome": "failure", "reason": "voucher-foreign-owner"}
    assert sample(registry, "testbed_bootstrap_attempts_total", **labels) == 1
    record = json.loads((thing.state / "state.json").read_text())
    assert (record["lifecycle"], record["reason"]) == ("failed", "voucher-foreign-owner")
    # A restart does not retry a final refusal either.
    assert after_restart["lifecycle"] == "failed"
    assert after_restart["bootstrap_run"]["attempts"] == 0


def test_retries_with_backoff_while_the_trust_center_is_down(world: World) -> None:
    thing = world.make_thing("thermostat-01")
    registry = CollectorRegistry()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        role = world.thing_role(thing, registry)
        await role.start()  # nothing listens on the trust center's port yet
        try:
            runner = role.bootstrapper
            assert runner is not None
            await eventually(lambda: runner.attempts >= 3)
            waiting = await eventually(
                lambda: (s := runner.status())["next_attempt_in_s"] is not None and s
            )
            assert role.lifecycle.state is S.BOOTSTRAPPING
            async with world.trust_center():
                await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
            return waiting, role.state()
        finally:
            await role.stop()

    waiting, state = asyncio.run(scenario())
    assert waiting["running"] and waiting["last"]["reason"] == "unreachable"
    assert 0 <= waiting["next_attempt_in_s"] <= 1.0  # bootstrap-retry-max
    assert state["lifecycle"] == "operational" and state["bootstrap"]["attempt"] >= 4
    failures = sample(
        registry,
        "testbed_bootstrap_attempts_total",
        **IDENT,
        outcome="failure",
        reason="unreachable",
    )
    assert failures >= 3
    assert (
        sample(
            registry, "testbed_bootstrap_attempts_total", **IDENT, outcome="success", reason="none"
        )
        == 1
    )
    assert sample(registry, "testbed_bootstrap_duration_seconds_count", **IDENT) == failures + 1


def test_unknown_thing_keeps_retrying_and_the_bootstrap_action_cuts_the_wait(world: World) -> None:
    stranger = world.make_thing("thermostat-01", imported=False)  # no voucher at the TC

    async def scenario() -> tuple[dict[str, Any], int]:
        async with world.trust_center():
            role = world.thing_role(
                stranger, **{"bootstrap-retry-initial": "30", "bootstrap-retry-max": "30"}
            )
            await role.start()
            try:
                runner = role.bootstrapper
                assert runner is not None
                await eventually(lambda: runner.status()["next_attempt_in_s"])
                before = runner.attempts
                status = await role.actions()["bootstrap"]({})
                await eventually(lambda: runner.attempts > before, timeout=5)
                return status, runner.attempts
            finally:
                await role.stop()

    status, attempts = asyncio.run(scenario())
    assert status["lifecycle"] == "bootstrapping"
    assert status["last"]["reason"] == "handshake-refused"
    assert attempts == 2


def test_auto_commission_false_waits_for_the_bootstrap_action(world: World) -> None:
    thing = world.make_thing("luminaire-01", "luminaire")

    async def scenario() -> tuple[str, dict[str, Any], str]:
        async with world.trust_center():
            role = world.thing_role(thing, **{"auto-commission": "false"})
            await role.start()
            try:
                await asyncio.sleep(0.3)
                waiting = role.lifecycle.state.value
                started = await role.actions()["bootstrap"]({})
                await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
                status = await role.actions()["status"]({})
                return waiting, started, status["lifecycle"]
            finally:
                await role.stop()

    waiting, started, after = asyncio.run(scenario())
    assert waiting == "installed"
    assert started["lifecycle"] == "bootstrapping" and started["running"]
    assert after == "operational"


def test_failed_thing_can_be_bootstrapped_again_by_action(world: World) -> None:
    thing = world.make_thing("thermostat-01", foreign_owner=True)

    async def scenario() -> tuple[str | None, int]:
        async with world.trust_center():
            role = world.thing_role(thing)
            await role.start()
            try:
                await eventually(lambda: role.lifecycle.state is S.FAILED)
                await role.actions()["bootstrap"]({})
                await eventually(lambda: role.lifecycle.record.transitions == 4)
                return role.lifecycle.record.reason, role.lifecycle.record.transitions
            finally:
                await role.stop()

    # failed -> bootstrapping -> failed again: refused again, recorded again.
    assert asyncio.run(scenario()) == ("voucher-foreign-owner", 4)


def test_thing_without_trust_center_stays_installed(world: World) -> None:
    thing = world.make_thing("sensor-01", "sensor")

    async def scenario() -> dict[str, Any]:
        role = world.thing_role(thing, **{"trust-center-uri": ""})
        await role.start()
        try:
            with pytest.raises(ActionError, match="no trust center"):
                await role.actions()["bootstrap"]({})
            return role.state()
        finally:
            await role.stop()

    state = asyncio.run(scenario())
    assert state["lifecycle"] == "installed"
    assert not {"bootstrap", "bootstrap_run", "coap", "requests"} & set(state)


def test_an_operational_thing_whose_port_is_taken_does_not_start(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> None:
        async with world.trust_center():
            first = world.thing_role(thing)
            await first.start()
            await eventually(lambda: first.lifecycle.state is S.OPERATIONAL)
            await first.stop()
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
            taken.bind(("::1", 0))
            port = str(taken.getsockname()[1])
            again = world.thing_role(thing, **{"coap-port": port})
            try:
                with pytest.raises(ServeError, match="cannot serve CoAP"):
                    await again.start()
            finally:
                await again.stop()
        # Its contexts were released: the next start works.
        third = world.thing_role(thing)
        await third.start()
        await third.stop()

    asyncio.run(scenario())
