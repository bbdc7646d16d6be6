"""Bootstrap profile registry, trust center side: which servers a trust center runs.

The thing side has its registry in ``testbed.node.thing.profiles``; the names are the same.
``edhoc-oscore`` is the EDHOC responder on the CoAP port (RFC 9528 / RFC 9668); ``dtls-cert``
and ``dtls-psk`` share one CoAPS (DTLS 1.2) endpoint on its own port, because the client's
cipher suite offer, not the port, says which of the two a handshake is. A trust center runs
every available profile unless its ``profiles`` attribute names a subset.
"""

from __future__ import annotations

from testbed.node.errors import ConfigError

EDHOC_OSCORE = "edhoc-oscore"
DTLS_CERT = "dtls-cert"
DTLS_PSK = "dtls-psk"
# profile -> the server that serves it
SERVERS: dict[str, str] = {EDHOC_OSCORE: "coap", DTLS_CERT: "coaps", DTLS_PSK: "coaps"}


def profile_names() -> tuple[str, ...]:
    return tuple(SERVERS)


def servers_for(value: str | None) -> frozenset[str]:
    """The servers to run for a ``profiles`` attribute ("dtls-cert,edhoc-oscore"; None: all)."""
    if value is None or not value.strip():
        return frozenset(SERVERS.values())
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [name for name in chosen if name not in SERVERS]
    if unknown:
        raise ConfigError(
            f"trust center attribute 'profiles' names unknown profiles {unknown}",
            "available: " + ", ".join(SERVERS),
        )
    return frozenset(SERVERS[name] for name in chosen)
