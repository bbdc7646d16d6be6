"""The field types every topology model is built from: names, quantities, profiles, placement,
the strict base model, and the bounds of the scale settings (scrape and read intervals).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from testbed.contracts.profiles import PROFILE_NAMES
from testbed.topology import units

NAME_RE = r"^[a-z][a-z0-9-]{0,29}$"
Name = Annotated[str, Field(pattern=NAME_RE, description="lower case, digits and '-', max 30")]

Probability = Annotated[float, BeforeValidator(units.probability)]
Duration = Annotated[float, BeforeValidator(units.duration)]
Rate = Annotated[int, BeforeValidator(units.rate)]

ThingRole = Literal["thermostat", "luminaire", "smoke-detector", "sensor", "actuator"]
HostRole = Literal["backend", "vendor-cloud", "attacker"]

# Scrape interval of the run's Prometheus (topology `observe: {scrape_interval}`): at most 15 s
# so that the one-minute rate windows of the recording rules hold four scrapes.
DEFAULT_SCRAPE_INTERVAL = 5.0
MIN_SCRAPE_INTERVAL, MAX_SCRAPE_INTERVAL = 1.0, 15.0
# A backend's read interval (a host's `read_interval`); its default is the node's (5 s).
MIN_READ_INTERVAL, MAX_READ_INTERVAL = 1.0, 3600.0


def _known_profile(name: str) -> str:
    if name not in PROFILE_NAMES:
        raise ValueError(
            f"unknown bootstrap profile {name!r}; available: {', '.join(PROFILE_NAMES)}"
        )
    return name


# The bootstrap profiles are the contract's list (testbed.contracts.profiles), which the node's
# registry implements (a test ties them): a topology may name exactly those.
ProfileName = Annotated[
    str,
    AfterValidator(_known_profile),
    WithJsonSchema({"type": "string", "enum": list(PROFILE_NAMES)}),
]
# Manufacturing faults and attacks a thing can be minted with (RFC 8576 Section 3 threats):
# rogue-idevid: a counterfeit whose IDevID is signed by a CA other than its vendor's;
# foreign-voucher: its voucher assigns it to an owner outside this building.
Fault = Literal["rogue-idevid", "foreign-voucher"]


# Where a node group runs on a multi-host engine: a Swarm placement constraint on node labels
# (``node.labels.zone==east``, ``node.hostname!=edge-1``); engines with one host ignore it.
PLACEMENT_RE = (
    r"^node\.(labels\.[A-Za-z0-9_.-]+|hostname|role|id|platform\.os|platform\.arch)"
    r"\s*(==|!=)\s*\S+$"
)
PLACEMENT_HELP = (
    "placement constraint on a multi-host engine (Swarm), e.g. 'node.labels.zone==east'; "
    "default: anywhere"
)
Placement = Annotated[str, Field(pattern=PLACEMENT_RE)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
