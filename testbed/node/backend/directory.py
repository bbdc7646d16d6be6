"""What a trust center says about its things: GET /things over EDHOC + OSCORE.

The backend authenticates with its host key (method 3, CCS by kid); the trust center lists
every operational thing with its address and the backend's side of the thing's OSCORE context
(enrollment_api: {K_THINGS: [{K_NAME, K_SERIAL, K_ADDRESS, K_PORT, K_VENDOR, K_MODEL,
K_DEVICE_CLASS, K_CONTEXT}, ...]}). One EDHOC per trust center and process; the client runs it
again by itself if the trust center dropped the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
import cbor2

from testbed.node import enrollment_api as api
from testbed.node import material
from testbed.node.backend.group import parse_group
from testbed.node.coap.credentials import Credential, EdhocIdentity
from testbed.node.coap.edhoc_client import EdhocOscoreClient
from testbed.node.enrollment_api import OscoreContextGrant


@dataclass(frozen=True)
class ThingEntry:
    domain: str
    name: str
    serial: str
    address: str
    port: int
    vendor: str
    model: str
    device_class: str
    grant: OscoreContextGrant  # the backend's view: it sends with grant.sender_id

    @property
    def uri(self) -> str:
        return f"coap://[{self.address}]:{self.port}"


class ListingError(ValueError):
    """The trust center answered, but not with a usable thing list."""


def parse_things(domain: str, payload: bytes) -> list[ThingEntry]:
    try:
        body: Any = cbor2.loads(payload)
        items = body[api.K_THINGS]
        # A thing without a context for us (none granted yet) cannot be read: not listed.
        return [_entry(domain, item) for item in items if item.get(api.K_CONTEXT) is not None]
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ListingError(f"/things from {domain} is not a thing list: {exc!r}") from exc


def _entry(domain: str, item: dict[int, Any]) -> ThingEntry:
    return ThingEntry(
        domain=domain,
        name=str(item[api.K_NAME]),
        serial=str(item[api.K_SERIAL]),
        address=str(item[api.K_ADDRESS]),
        port=int(item.get(api.K_PORT) or material.COAP_PORT),
        vendor=str(item.get(api.K_VENDOR, "")),
        model=str(item.get(api.K_MODEL, "")),
        device_class=str(item.get(api.K_DEVICE_CLASS, "")),
        grant=OscoreContextGrant.from_cbor_map(item[api.K_CONTEXT]),
    )


class TrustCenterDirectory:
    """One trust center's listing, fetched over one EDHOC-derived OSCORE context."""

    def __init__(self, domain: str, client: EdhocOscoreClient) -> None:
        self.domain = domain
        self.client = client
        self.group: OscoreContextGrant | None = None  # the group grant of the last listing

    @classmethod
    async def connect(cls, domain: str, uri: str, material_root: Path) -> TrustCenterDirectory:
        identity = EdhocIdentity.from_files(
            material.path(material.HOST_KEY_COSE, material_root),
            material.path(material.HOST_CCS, material_root),
        )
        server = Credential.from_file(
            material.path(f"{material.TRUST_CENTERS_DIR}/{domain}.ccs.cbor", material_root)
        )
        return cls(domain, await EdhocOscoreClient.connect(identity, server, uri))

    async def things(self) -> list[ThingEntry]:
        """The listing; ChannelError/aiocoap errors for transport trouble, ListingError else."""
        response = await self.client.request(aiocoap.GET, api.THINGS)
        if response.code != aiocoap.CONTENT:
            raise ListingError(
                f"{api.THINGS} at {self.domain}: {response.code}: {response.payload[:100]!r}"
            )
        things = parse_things(self.domain, response.payload)
        self.group = parse_group(response.payload)
        return things

    async def close(self) -> None:
        await self.client.close()
