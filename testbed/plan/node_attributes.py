"""Node attributes the planner derives from one topology section each: the radio PAN's channel
model (for the border router's medium), the IP links' impairments (``links-<name>``, for every
border router's shaper), the trust center's defence switches and a thing's energy model.
Pure functions of the topology; ``testbed.plan.planner`` places them on the nodes.
"""

from __future__ import annotations

import dataclasses
import hashlib

from testbed.contracts import energy
from testbed.contracts import impairment as shaping
from testbed.contracts.radio import RadioPanConfig
from testbed.errors import PlanError
from testbed.topology.schema import Energy, IpLink, Pan, Topology, TrustCenterDefences


def with_channel_model(config: RadioPanConfig, pan: Pan, names: dict[str, str]) -> RadioPanConfig:
    """What the medium in the border router applies to a radio PAN (from the topology)."""
    ge = pan.gilbert_elliott
    return dataclasses.replace(
        config,
        loss=pan.loss,
        gilbert_elliott=ge.model() if ge else None,
        max_frame_retries=pan.mac_max_frame_retries,
        seed=pan.seed,
        names=names,
        guest_stations=pan.guest_stations,
        radios=[r.model_dump(exclude_none=True) for r in pan.radios],
    )


# -- IP link impairments: carried by every border router (a link = its interface there) -------


def link_attributes(topology: Topology) -> dict[str, str]:
    """``links-backbone``/``links-internet``: what the router's shaper starts with."""
    out = {}
    for name in shaping.LINK_NAMES:
        spec = shaping.LinkSpec(
            name=name,
            planned=ip_impairment(getattr(topology.links, name), f"links.{name}"),
            seed=int(hashlib.sha256(f"{topology.building}/{name}".encode()).hexdigest()[:8], 16),
        )
        out[spec.key] = spec.to_attribute()
    return out


def ip_impairment(link: IpLink, where: str) -> shaping.Impairment:
    try:
        return link.model()
    except shaping.ImpairmentError as exc:
        raise PlanError(
            f"{where}.{exc.option}: {exc.reason}", f"fix {where} in the topology file"
        ) from None


def defence_attributes(defences: TrustCenterDefences) -> dict[str, str]:
    """The trust center's defence switches as node attributes (testbed.node.trust_center
    .defences reads them)."""
    rate = defences.rate_limit_per_source
    return {
        "defence-return-routability": "true" if defences.return_routability else "false",
        "defence-rate-limit-per-source": "off" if rate is None else f"{rate:g}",
        "defence-rate-limit-burst": str(defences.rate_limit_burst),
        "defence-max-pending-per-source": str(defences.max_pending_per_source),
    }


def energy_model(spec: Energy) -> energy.EnergyModel:
    overrides = {k: getattr(spec, k) for k in ("voltage", "tx_ma", "rx_ma", "cpu_ma", "sleep_ua")}
    return energy.model_for(spec.radio, spec.duty_cycle, spec.cpu_scale, overrides)
