"""The thing's parts without a network: retry policy, catalog, physics, store, registry, config."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from testbed.node.bootstrap.profile import BootstrapResult, FailureReason
from testbed.node.enrollment_api import OscoreContextGrant
from testbed.node.errors import ConfigError, StateError
from testbed.node.thing import catalog, contexts, physics
from testbed.node.thing.bootstrapper import RetryPolicy, reason_of, retryable
from testbed.node.thing.profiles import profile_for
from testbed.node.thing.store import ThingStore
from tests.unit.node.thing.world import World, der


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy, rng = RetryPolicy(1.0, 30.0), random.Random(7)
    for failures, step in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 30), (20, 30)]:
        delays = [policy.delay(failures, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), failures
        assert max(delays) - min(delays) > step / 4  # actually jittered


def failure(
    reason: FailureReason, code: str | None = None, refusal: str | None = None
) -> BootstrapResult:
    return BootstrapResult.measured(
        "edhoc-oscore", 0.1, [], reason=reason, code=code, refusal=refusal
    )


@pytest.mark.parametrize(
    ("result", "again", "label"),
    [
        (failure(FailureReason.TIMEOUT), True, "timeout"),
        (failure(FailureReason.UNREACHABLE), True, "unreachable"),
        (failure(FailureReason.HANDSHAKE_REFUSED, "4.01"), True, "handshake-refused"),
        (failure(FailureReason.ENROLLMENT_REFUSED, "5.03"), True, "enrollment-refused"),
        (failure(FailureReason.ENROLLMENT_REFUSED, "4.03", "revoked"), False, "revoked"),
        (failure(FailureReason.ENROLLMENT_REFUSED, "4.00"), False, "enrollment-refused"),
        (failure(FailureReason.CONFIGURATION), False, "configuration"),
        (failure(FailureReason.PEER_AUTHENTICATION), False, "peer-authentication"),
        (failure(FailureReason.PROTOCOL_ERROR), False, "protocol-error"),
        (BootstrapResult.measured("edhoc-oscore", 0.1, []), False, "none"),
    ],
)
def test_which_failures_are_retried(result: BootstrapResult, again: bool, label: str) -> None:
    assert (retryable(result), reason_of(result)) == (again, label)


def test_catalog_payloads() -> None:
    assert catalog.decode(catalog.encode(21.5)) == 21.5
    assert len(catalog.encode(21.5)) == 3  # canonical CBOR: a half-precision float
    for bad in (b"", b"\xff", b"\x01\x02"):  # empty, not CBOR, trailing bytes
        with pytest.raises(ValueError):
            catalog.decode(bad)
    assert catalog.readable("thermostat") == ("temperature", "setpoint")
    assert catalog.readable("toaster") == ()
    assert set(catalog.DEVICE_CLASSES) == set(physics.MODELS)


def test_physics_ranges_and_drift() -> None:
    now = [1000.0]
    thermostat = physics.Thermostat("t-1", lambda: now[0])
    start = thermostat.read("temperature")
    for value in (5, 35, 21.25):
        assert thermostat.write("setpoint", value) == value
    for value in (4.9, 35.1):
        with pytest.raises(physics.OutOfRange):
            thermostat.write("setpoint", value)
    for wrong in ("21", True, None, float("nan")):
        with pytest.raises(physics.Invalid):
            thermostat.write("setpoint", wrong)
    thermostat.write("setpoint", 30)
    now[0] += 3600  # an hour later the room is near its setpoint
    assert abs(thermostat.read("temperature") - 30) < 0.5 and start < 25
    lamp = physics.Luminaire("l-1")
    assert lamp.write("light", {"level": 0}) == {"on": False, "level": 0}
    with pytest.raises(physics.Invalid):
        lamp.write("light", {"level": 5.5})
    # Two things do not show the same numbers: at any one instant two sine phases can cross
    # (a CI run once read 50.0 from both), so compare the readings over an hour, on one clock.
    hour = [now[0] + minute * 60 for minute in range(60)]
    curves = []
    for name in ("a", "b"):
        sensor = physics.Sensor(name, iter(hour).__next__)
        curves.append([sensor.read("value") for _ in hour])
    assert curves[0] != curves[1]
    assert sum(x != y for x, y in zip(*curves, strict=True)) > len(hour) // 2


def grant(generation: int, secret: bytes = b"s" * 16) -> OscoreContextGrant:
    return OscoreContextGrant(
        "backend", b"\x02", b"\x03", secret, b"salt", b"\x82\x01\x01", generation
    )


def test_store_keeps_one_key_and_switches_contexts_by_generation(
    world: World, tmp_path: Path
) -> None:
    state = tmp_path / "volume"
    state.mkdir(mode=0o700)
    s = ThingStore(state)
    key = s.operational_key()
    assert s.operational_key().private_numbers() == key.private_numbers()
    assert stat.S_IMODE((state / "operational.key.pem").stat().st_mode) == 0o600

    thing = world.make_thing("t")
    ldevid = der(thing.device.idevid)  # any certificate will do for the store
    first = s.save_enrollment(ldevid, (grant(1),))
    again = s.save_enrollment(ldevid, (grant(1),))  # the same grant keeps its directory
    assert again.contexts == first.contexts
    third = s.save_enrollment(ldevid, (grant(2, b"t" * 16),))
    assert third.contexts["backend"] != first.contexts["backend"]
    assert not first.contexts["backend"].exists()  # superseded and removed
    assert contexts.holds(third.contexts["backend"], grant(2, b"t" * 16))
    loaded = s.load_operational()
    assert loaded is not None and loaded.contexts == third.contexts

    (state / "operational.json").write_text('{"ldevid": "gone.der"}')
    with pytest.raises(StateError):
        s.load_operational()


def test_a_context_directory_serves_one_process_at_a_time(tmp_path: Path) -> None:
    directory = contexts.write_context(tmp_path, grant(1))
    first = contexts.PersistentContext(directory)
    with pytest.raises(StateError, match="in use"):
        contexts.PersistentContext(directory)
    first.close()
    contexts.PersistentContext(directory).close()


def test_unknown_profile_or_device_class_is_a_config_error(world: World) -> None:
    with pytest.raises(ConfigError, match="no-such-profile"):
        profile_for("no-such-profile")
    assert profile_for("dtls-psk").name == "dtls-psk"
    assert profile_for("dtls-cert").name == "dtls-cert"
    thing = world.make_thing("t")
    with pytest.raises(ConfigError, match="not available"):
        world.thing_role(thing, profile="no-such-profile")
    with pytest.raises(ConfigError, match="device-class"):
        world.thing_role(thing, **{"device-class": "toaster"})
    with pytest.raises(ConfigError, match="not a number"):
        world.thing_role(thing, **{"bootstrap-retry-max": "soon"})
    # Without a trust center the thing does not bootstrap, so these do not matter.
    world.thing_role(thing, profile="no-such-profile", **{"trust-center-uri": ""})
