"""Docker networks as the daemon reports them: who is attached, their shape, and forced
disconnects of what a network still lists (used by the Docker engine and test clean-up)."""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import docker.errors

__all__ = ["_attached", "_network_shape", "detach_endpoints"]


def _attached(attrs: dict[str, Any]) -> list[str]:
    """Containers an inspected network lists; an ``ep-<id>`` key is an endpoint whose container
    is gone (moby/moby#23302), which a forced disconnect removes, not a container."""
    return [key for key in (attrs.get("Containers") or {}) if not key.startswith("ep-")]


def _network_shape(attrs: dict[str, Any]) -> tuple[str, str, bool, bool]:
    """(IPv6 subnet, gateway, internal, IPv6 enabled) of an inspected network."""
    pools = (attrs.get("IPAM") or {}).get("Config") or []
    v6: dict[str, str] = next((p for p in pools if ":" in p.get("Subnet", "")), {})
    return (
        v6.get("Subnet", ""),
        v6.get("Gateway", ""),
        bool(attrs.get("Internal")),
        bool(attrs.get("EnableIPv6")),
    )


def detach_endpoints(client: docker.DockerClient, net: Any) -> None:
    """Force-disconnect whatever a network still lists (a container removed mid-connect, a
    foreign container attached by hand). A stale endpoint whose container is gone is listed
    under ``ep-<id>`` and only its endpoint name reaches it, as with ``docker network
    disconnect -f NET NAME`` (moby/moby#23302): try the key, then the name."""
    with contextlib.suppress(docker.errors.APIError):
        net.reload()
        for key, endpoint in (net.attrs.get("Containers") or {}).items():
            for target in dict.fromkeys((key, (endpoint or {}).get("Name"))):
                if not target:
                    continue
                try:
                    client.api.disconnect_container_from_network(target, net.id, force=True)
                    break
                except docker.errors.APIError:
                    continue
