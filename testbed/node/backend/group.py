"""The backend as group commander: one signed request to every member of a domain on a PAN.

Each trust center's /things carries the backend's view of the domain's group context
(enrollment_api.K_GROUP: group id, key, generation, the backend's group sender ID and the trust
center's CCS). The backend signs with its host key (the CCS the trust center knows it by), so
members accept the command as coming from this backend (testbed.node.coap.group). One context
per domain and generation lives as long as the process: its sequence number keeps counting; a
new generation (a member left) replaces it.

``send`` hands the protected datagram to a border router's group relay (its address on the
target PAN, testbed.node.coap.group_relay), which puts it on the PAN once, to ff05::fd.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2

from testbed.node import enrollment_api as api
from testbed.node import material
from testbed.node.coap import group
from testbed.node.coap.credentials import Credential, load_private_key
from testbed.node.coap.group_relay import GROUP_RELAY_PORT
from testbed.node.enrollment_api import OscoreContextGrant
from testbed.node.errors import ActionError


def parse_group(payload: bytes) -> OscoreContextGrant | None:
    """The backend's group grant in a /things payload (None: no member has the key yet)."""
    try:
        body: Any = cbor2.loads(payload)
        raw = body.get(api.K_GROUP) if isinstance(body, dict) else None
        return None if raw is None else OscoreContextGrant.from_cbor_map(raw)
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError):
        return None


@dataclass
class _Sender:
    grant: OscoreContextGrant
    context: Any  # aiocoap SimpleGroupContext


class GroupCommander:
    def __init__(self, material_root: Path) -> None:
        self.material_root = material_root
        self.grants: dict[str, OscoreContextGrant] = {}  # by domain, from the last listing
        self._senders: dict[str, _Sender] = {}
        self.sent: dict[str, int] = {}  # commands by domain

    def update(self, domain: str, grant: OscoreContextGrant | None) -> None:
        if grant is None:
            self.grants.pop(domain, None)
        else:
            self.grants[domain] = grant

    def _sender(self, domain: str) -> _Sender:
        grant = self.grants.get(domain)
        if grant is None:
            known = ", ".join(sorted(self.grants)) or "none"
            raise ActionError(
                f"no group key for domain {domain!r} (domains with one: {known})",
                "a group key exists once a thing of that domain has its contexts; wait for a poll",
            )
        sender = self._senders.get(domain)
        if sender is None or sender.grant != grant:
            key = group.GroupKey(
                grant.id_context or b"", grant.master_secret, grant.master_salt, grant.generation
            )
            ctx = group.commander(
                key,
                load_private_key(material.path(material.HOST_KEY_PEM, self.material_root)),
                Credential.from_file(material.path(material.HOST_CCS, self.material_root)).encoded,
                grant.manager_credential or b"",
                sender_id=grant.sender_id,
            )
            sender = self._senders[domain] = _Sender(grant, ctx)
        return sender

    async def send(self, domain: str, relay: str, path: str, value: Any) -> dict[str, Any]:
        """Protect a PUT of ``value`` (CBOR) to ``path`` and send it once to ``relay``."""
        try:
            address = ipaddress.IPv6Address(relay)
        except ValueError as exc:
            raise ActionError(f"relay {relay!r} is not an IPv6 address", str(exc)) from None
        sender = self._sender(domain)
        datagram = group.protect(
            sender.context, group.command(path, cbor2.dumps(value, canonical=True))
        )
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, family=socket.AF_INET6
        )
        try:
            transport.sendto(datagram, (str(address), GROUP_RELAY_PORT))
        finally:
            transport.close()
        self.sent[domain] = self.sent.get(domain, 0) + 1
        return {
            "domain": domain,
            "relay": str(address),
            "group": group.ALL_COAP_NODES_SITE,
            "path": path,
            "generation": sender.grant.generation,
            "bytes": len(datagram),
            "sequence": sender.context.sender_sequence_number - 1,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "generations": {d: g.generation for d, g in sorted(self.grants.items())},
            "sent": dict(self.sent),
        }
