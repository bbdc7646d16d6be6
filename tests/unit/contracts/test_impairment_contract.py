"""One model of link impairments for host and node: the topology schema, the planner's node
attributes, the IP shaper and the radio medium use the same classes and the same parser."""

from __future__ import annotations

import pytest

from testbed.contracts import impairment
from testbed.contracts.radio import RadioPanConfig
from testbed.links.options import parameters
from testbed.node.errors import ActionError
from testbed.node.radio import links as radio_links
from testbed.node.radio.attach import probability as node_probability
from testbed.topology import schema, units


@pytest.mark.parametrize(
    ("text", "value"), [("20%", 0.2), (0.2, 0.2), ("0.2", 0.2), (" 5% ", 0.05), (1, 1.0)]
)
def test_host_cli_and_node_read_a_loss_alike(text: object, value: float) -> None:
    assert impairment.probability(text) == pytest.approx(value)
    assert units.probability(text) == pytest.approx(value)
    assert node_probability(text, "loss") == pytest.approx(value)
    if isinstance(text, str):
        assert parameters({"loss": text})["loss"] == pytest.approx(value)


@pytest.mark.parametrize("bad", ["abc", 1.5, "-1%", "120%", True, None, float("nan")])
def test_and_refuse_the_same_values(bad: object) -> None:
    with pytest.raises(impairment.ImpairmentError):
        impairment.probability(bad, "loss")
    with pytest.raises(ValueError):
        units.probability(bad)
    with pytest.raises(ActionError):
        node_probability(bad, "loss")


def test_gilbert_elliott_is_one_class_everywhere() -> None:
    assert radio_links.GilbertElliott is impairment.GilbertElliott
    topo = schema.GilbertElliott(p="1%", r="30%", loss_good=0, loss_bad="80%")
    model = topo.model()
    assert isinstance(model, impairment.GilbertElliott)
    assert model.stationary_loss == model.expected_loss == pytest.approx(0.8 * 0.01 / 0.31)
    config = RadioPanConfig(
        pan="p", address="fd00::ff:fe00:11/64", short=0x11, medium="::1", gilbert_elliott=model
    )
    back = RadioPanConfig.from_attribute("p", config.to_attribute())
    assert back.gilbert_elliott == model
    with pytest.raises(impairment.ImpairmentError):
        impairment.GilbertElliott(p=1.5, r=0.1)
    # The radio medium needs a chain that moves; netem accepts one that never does.
    assert impairment.GilbertElliott(0.0, 0.0, 0.1).stationary_loss == pytest.approx(0.1)
    with pytest.raises(ValueError, match="never mixes"):
        radio_links.LinkConfig(burst=impairment.GilbertElliott(0.0, 0.0))


def test_the_schema_wraps_the_netem_model() -> None:
    link = schema.IpLink(delay="30ms", jitter="5ms", loss="2%", rate="250kbit")
    assert link.model() == impairment.Impairment(delay=0.03, jitter=0.005, loss=0.02, rate=250_000)
