"""A thing as a member of its domain's group: it acts on signed group commands.

The trust center hands every member the group context with the backends' (commanders')
credentials (``trust_center.contexts.group_view``). With them the thing's CoAP server also
accepts Group OSCORE group-mode requests (testbed.node.coap.group), signed by a commander,
sent to All CoAP Nodes (``ff05::fd``) on its PAN: the server socket joins that group on the
PAN interface, and aiocoap's OSCORE site wrapper finds the group context by group id and kid
like any other context. The member's own key in the group is its device key with its device
CCS; it never sends in group mode (requests carry No-Response), but aiocoap's context wants a
matching pair.

``QuietGroupSite`` sits in front of the OSCORE wrapper and keeps the server silent towards a
group request (RFC 7252 Section 8.2 and RFC 7967): a response would cost one unicast frame
burst per member, which is what a group command is there to save. Whether a member acted is
read back over its pairwise context (the light's state, the handled-request counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiocoap import interfaces, oscore

from testbed.contracts.node_config import NodeConfig
from testbed.contracts.radio import pan_address
from testbed.node import material
from testbed.node.coap import group
from testbed.node.coap.credentials import Credential, load_private_key
from testbed.node.coap.group import IF_INET6, interface_holding
from testbed.node.thing.contexts import read_group


def pan_interface(config: NodeConfig, if_inet6: Path = IF_INET6) -> str | None:
    """The name of the interface that holds the thing's PAN address (lowpan0 on a radio PAN,
    the Docker network's interface otherwise); None if it has none."""
    for iface in config.interfaces:
        if not iface.network.startswith("pan-"):
            continue
        address = pan_address(config.attributes, iface.network) or iface.ipv6.split("/")[0]
        return interface_holding(address, if_inet6)
    return None


def member_context(directory: Path, material_root: Path) -> Any | None:
    """The group context in ``directory`` as a receiving member (an aiocoap
    SimpleGroupContext), or None if that grant names no commander to accept."""
    stored = read_group(directory)
    if stored is None:
        return None
    key, peers, manager, sender_id = stored
    if not peers:
        return None
    private_key = load_private_key(material.path(material.DEVICE_KEY_PEM, material_root))
    own = Credential.from_file(material.path(material.DEVICE_CCS, material_root))
    return group.context(key, sender_id, private_key, own.encoded, peers, manager)


def is_group_request(request: Any) -> bool:
    """Is this (still protected) request a Group OSCORE group-mode request?"""
    if request.opt.oscore is None:
        return False
    try:
        return oscore.COSE_COUNTERSIGNATURE0 in oscore.verify_start(request)
    except (oscore.ProtectionInvalid, ValueError):
        return False


class _SilentPipe:
    """Passes a pipe through, marking every response No-Response so no transport sends it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def add_response(self, response: Any, is_last: bool = False) -> None:
        response.opt.no_response = group.NO_RESPONSE_ALL
        self._inner.add_response(response, is_last=is_last)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class QuietGroupSite(interfaces.Resource):  # type: ignore[misc]
    """The outermost site: group requests get no response (nor an error), all else passes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def render_to_pipe(self, pipe: Any) -> None:
        if is_group_request(pipe.request):
            pipe = _SilentPipe(pipe)
        await self.inner.render_to_pipe(pipe)

    async def render(self, request: Any) -> Any:
        raise RuntimeError("QuietGroupSite renders through render_to_pipe only")

    async def needs_blockwise_assembly(self, request: Any) -> bool:
        return False

    def get_resources_as_linkheader(self) -> Any:
        return self.inner.get_resources_as_linkheader()
