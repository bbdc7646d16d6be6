"""Cross-domain rules of a topology (``policies:``): who may open traffic to whom.

    policies:
      - {from: host:backend-hvac, to: domain:lighting, allow: false}
      - {from: thing:occupancy-01, to: domain:lighting, ports: [5683]}

A rule matches traffic *opened* by a node of ``from`` towards a node of ``to`` (replies of an
allowed flow always pass). Selectors:

    any              every node but the border routers
    domain:NAME      the things the topology puts in that domain, and its trust center
    host:NAME        an Internet host, or a trust center by its node name
    thing:NAME       one thing (its expanded name, e.g. lamp-01)

``ports`` limits a rule to those UDP/TCP destination ports (empty: every protocol and port);
``name`` labels its drop counter (default: the key path, e.g. ``policies[1]``). CoAP resources
cannot be a criterion: OSCORE encrypts them end to end, and the border router must not see them.

The rules are tried in order, first match wins; after them come the defaults (DEFAULT_RULES in
testbed.plan.cross_domain), and whatever matches nothing is dropped. Without a ``policies`` key the
building has no filter at all (as before policies existed); ``policies: []`` means the defaults
only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from testbed.topology.schema import Loc, Topology

SELECTOR_RE = r"^(any|(domain|host|thing):[a-z][a-z0-9-]{0,29})$"
Selector = Annotated[
    str,
    Field(
        pattern=SELECTOR_RE,
        description="any, domain:NAME, host:NAME (an Internet host or a trust center), thing:NAME",
    ),
]
Port = Annotated[int, Field(ge=1, le=65535)]


class PolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # "from" is a Python keyword: the attribute is source, the YAML key stays "from".
    source: Selector = Field(alias="from")
    to: Selector
    allow: bool = True
    ports: list[Port] = Field(default_factory=list, description="UDP/TCP destination ports")
    name: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9-]{0,39}$", description="label of the rule's drop counter"
    )


def selector_kind(selector: str) -> tuple[str, str]:
    """``domain:hvac`` -> (``domain``, ``hvac``); ``any`` -> (``any``, ``""``)."""
    kind, _, name = selector.partition(":")
    return kind, name


def policy_problems(topo: Topology) -> list[tuple[Loc, str]]:
    """Selectors that name nothing in the topology, with the key path where they stand."""
    domains = {d.name for d in topo.domains}
    hosts = {h.name for h in topo.hosts} | {d.trust_center_name for d in topo.domains}
    things = {name for t in topo.things for name in t.names()}
    known = {"domain": domains, "host": hosts, "thing": things}
    problems: list[tuple[Loc, str]] = []
    labels: dict[str, int] = {}
    for index, rule in enumerate(topo.policies or []):
        for key, selector in (("from", rule.source), ("to", rule.to)):
            kind, name = selector_kind(selector)
            if kind != "any" and name not in known[kind]:
                choices = ", ".join(sorted(known[kind])[:12])
                problems.append(
                    (("policies", index, key), f"unknown {kind} {name!r}; known: {choices}")
                )
        if rule.name is not None:
            if rule.name in labels or re.match(r"^default-", rule.name):
                problems.append(
                    (
                        ("policies", index, "name"),
                        f"rule name {rule.name!r} is taken (twice, or reserved: default-*)",
                    )
                )
            labels[rule.name] = index
    return problems
