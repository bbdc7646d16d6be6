"""What the proxy sees of each message it forwards, what it counts, and how it tampers.

End to end (OSCORE, RFC 8613 4.1): the proxy sees the outer message only: the outer code
(POST/FETCH for requests, 2.04/2.05 for responses), the Class U options it needs to forward
(Proxy-Scheme, Uri-Host, Uri-Port), the OSCORE option (flag bits, partial IV, kid) and a
ciphertext payload that holds the real code, Uri-Path, Content-Format and value. Its payload
bytes are counted as opaque. Hop by hop (DTLS terminated here): the whole request and response
are in clear, method, path, content format and value; their payload bytes count as plaintext.

Tampering (the compromised-proxy switch) changes what it can: in clear it flips the value a
command or reading carries (``flip_value``: a bool negated, a number mirrored, a light turned
the other way), re-encoded so the receiver acts on it; in an OSCORE payload it can only flip
bits of ciphertext, which the receiver's AEAD check refuses.

The debug log names what was seen without secrets: codes, paths, kid, partial IV, sizes and,
hop by hop, the value (application data the proxy reads anyway, not key material).
"""

from __future__ import annotations

from typing import Any

import aiocoap
from prometheus_client import CollectorRegistry

from testbed.contracts.proxy import END_TO_END
from testbed.node import declared_metrics as declared
from testbed.node.logs import EventLog
from testbed.node.thing import catalog

REQUEST = "request"
RESPONSE = "response"


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = declared.counter("testbed_proxy_requests", registry)
        self.plaintext = declared.counter("testbed_proxy_plaintext_bytes", registry)
        self.opaque = declared.counter("testbed_proxy_opaque_bytes", registry)
        self.tampered = declared.counter("testbed_proxy_tampered", registry)
        self.wire_bytes = declared.counter("testbed_proxy_wire_bytes", registry)
        self.datagrams = declared.counter("testbed_proxy_datagrams", registry)


def flip_value(value: Any) -> Any:
    """The value a tampering proxy substitutes for ``value`` (always a different one)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        # Mirror within a thermostat's setpoint range; any other number just moves.
        return 40 - value if 5 <= value <= 35 and value != 20 else value + 1
    if isinstance(value, dict):
        out = dict(value)
        if isinstance(out.get("on"), bool):
            out["on"] = not out["on"]
        if isinstance(out.get("level"), int) and not isinstance(out["level"], bool):
            out["level"] = 100 - out["level"] if out["level"] != 50 else 0
        return out
    return value


def tamper_payload(payload: bytes, readable: bool) -> bytes:
    """A changed payload: the flipped value when it is in clear CBOR, else one bit flipped."""
    if readable:
        try:
            value = catalog.decode(payload)
        except ValueError:
            pass
        else:
            changed = catalog.encode(flip_value(value))
            if changed != payload:
                return changed
    return bytes([payload[0] ^ 0x01]) + payload[1:]


class Inspector:
    """Sees, counts and (when compromised) tampers with what passes the proxy."""

    def __init__(self, metrics: ProxyMetrics, log: EventLog, *, tamper: bool = False) -> None:
        self.metrics = metrics
        self.log = log
        self.tamper = tamper
        self.seen: dict[str, dict[str, int]] = {}  # mode -> counters, for the state snapshot

    def _count(self, mode: str, key: str, n: int = 1) -> None:
        by_mode = self.seen.setdefault(mode, {})
        by_mode[key] = by_mode.get(key, 0) + n

    def message(self, mode: str, direction: str, message: aiocoap.Message) -> aiocoap.Message:
        """Look at one message about to be forwarded; the message to forward (maybe altered)."""
        readable = mode != END_TO_END or message.opt.oscore is None
        size = len(message.payload)
        if readable:
            self.metrics.plaintext.labels(mode, direction).inc(size)
            self._count(mode, f"plaintext_bytes_{direction}", size)
        else:
            self.metrics.opaque.labels(mode, direction).inc(size)
            self._count(mode, f"opaque_bytes_{direction}", size)
        self.log.debug("proxy.seen", mode=mode, direction=direction, **describe(message, readable))
        if not self.tamper or not message.payload:
            return message
        if direction == RESPONSE and not message.code.is_successful():
            return message  # error diagnostics: nothing a command or reading rides on
        altered = message.copy(payload=tamper_payload(message.payload, readable))
        self.metrics.tampered.labels(mode, direction).inc()
        self._count(mode, f"tampered_{direction}")
        self.log.debug(
            "proxy.tampered", mode=mode, direction=direction, **describe(altered, readable)
        )
        return altered

    def forwarded(self, mode: str, outcome: str) -> None:
        self.metrics.requests.labels(mode, outcome).inc()
        self._count(mode, f"requests_{outcome}")


def describe(message: aiocoap.Message, readable: bool) -> dict[str, Any]:
    """What the proxy can tell about a message, for its debug log (no key material)."""
    out: dict[str, Any] = {"code": message.code.dotted, "payload_bytes": len(message.payload)}
    if message.opt.oscore is not None:
        option = bytes(message.opt.oscore)
        out["oscore_option"] = option.hex()  # flags, partial IV, kid: all sent in clear
    if message.opt.uri_host:
        out["uri_host"] = message.opt.uri_host
    if readable:
        if message.opt.uri_path:
            out["path"] = "/" + "/".join(message.opt.uri_path)
        if message.opt.content_format is not None:
            out["content_format"] = int(message.opt.content_format)
        if message.payload:
            try:
                out["value"] = catalog.decode(message.payload)
            except ValueError:
                out["payload_hex"] = message.payload[:32].hex()
    return out
