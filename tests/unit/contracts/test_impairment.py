"""Impairment parameters: validation names the option, attributes round-trip, people read it."""

from __future__ import annotations

import pytest

from testbed.contracts.impairment import (
    GilbertElliott,
    Impairment,
    ImpairmentError,
    LinkSpec,
    link_specs,
)


def test_defaults_do_nothing() -> None:
    assert Impairment().is_none
    assert Impairment(limit=50).is_none
    assert not Impairment(delay=0.01).is_none
    assert Impairment().describe() == "none"


@pytest.mark.parametrize(
    ("data", "option"),
    [
        ({"loss": 1.5}, "loss"),
        ({"loss": "20%"}, "loss"),  # units are the host's business
        ({"duplicate": -0.1}, "duplicate"),
        ({"corrupt": True}, "corrupt"),
        ({"delay": -1}, "delay"),
        ({"delay": 0.01, "jitter": 0.02}, "jitter"),
        ({"jitter": 0.001}, "jitter"),
        ({"reorder": 0.1}, "reorder"),
        ({"rate": 0}, "rate"),
        ({"rate": "fast"}, "rate"),
        ({"limit": 0}, "limit"),
        ({"loss": 0.1, "gilbert_elliott": {"p": 0.1, "r": 0.5}}, "loss"),
        ({"gilbert_elliott": {"p": 0.1}}, "gilbert_elliott"),
        ({"gilbert_elliott": {"p": 0.1, "r": 2}}, "gilbert_elliott.r"),
        ({"bandwidth": 1}, "bandwidth"),
    ],
)
def test_bad_values_name_their_option(data: dict[str, object], option: str) -> None:
    with pytest.raises(ImpairmentError) as info:
        Impairment.from_dict(data)
    assert info.value.option == option
    assert str(info.value).startswith(option)


def test_round_trip_through_the_planner_attribute() -> None:
    imp = Impairment(
        delay=0.03,
        jitter=0.005,
        gilbert_elliott=GilbertElliott(0.01, 0.3, 0.0, 0.8),
        rate=250_000,
        duplicate=0.01,
        reorder=0.05,
        corrupt=0.001,
    )
    spec = LinkSpec("internet", imp, seed=42)
    assert spec.key == "links-internet"
    back = link_specs({spec.key: spec.to_attribute(), "pans": "floor1"})
    assert back == [spec]
    assert imp.describe() == (
        "delay 30ms ±5ms, loss gilbert-elliott p=1% r=30% good=0% bad=80%, duplicate 1%, "
        "reorder 5%, corrupt 0.1%, rate 250kbit"
    )


def test_unknown_link_attribute_is_refused() -> None:
    with pytest.raises(ImpairmentError, match="unknown link"):
        link_specs({"links-wan": "{}"})


def test_expected_loss_of_gilbert_elliott() -> None:
    ge = GilbertElliott(p=0.1, r=0.4, loss_good=0.0, loss_bad=1.0)
    assert ge.expected_loss == pytest.approx(0.2)
    assert Impairment(gilbert_elliott=ge).expected_loss == pytest.approx(0.2)
