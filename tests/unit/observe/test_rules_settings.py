"""Alert timings: defaults, TESTBED_ALERT_FOR overrides, clear errors."""

from __future__ import annotations

import pytest

from testbed.errors import TestbedError
from testbed.observe.rules import ALERT_FOR_ENV, DEFAULT_FOR, AlertTimings, alert_rules


def _for(timings: AlertTimings) -> dict[str, str]:
    return {r["alert"]: r["for"] for r in alert_rules(timings)[0]["rules"]}


def test_defaults() -> None:
    got = _for(AlertTimings())
    assert got == dict(DEFAULT_FOR)
    assert got["ThingStuckBootstrapping"] == "2m"


def test_environment_overrides() -> None:
    timings = AlertTimings.from_env(
        {ALERT_FOR_ENV: "ThingStuckBootstrapping=20s, TrustCenterDown=5s,pan_loss_threshold=0.1"}
    )
    got = _for(timings)
    assert got["ThingStuckBootstrapping"] == "20s" and got["TrustCenterDown"] == "5s"
    assert got["NodeDown"] == DEFAULT_FOR["NodeDown"]
    assert timings.pan_loss_threshold == 0.1
    assert AlertTimings.from_env({}) == AlertTimings()


@pytest.mark.parametrize(
    "text",
    ["NoSuchAlert=5s", "TrustCenterDown=5 minutes", "TrustCenterDown", "pan_loss_threshold=x"],
)
def test_bad_overrides_are_clear_errors(text: str) -> None:
    with pytest.raises(TestbedError) as info:
        AlertTimings().overridden(text)
    assert ALERT_FOR_ENV in info.value.message
    assert info.value.hint
