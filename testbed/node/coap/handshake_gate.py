"""What an EDHOC responder checks before it keeps any state for a message_1.

Two defences, each a switch (``GateConfig``), both answered without keeping state for the
sender:

- **Return routability** with the CoAP Echo option (RFC 9175 Section 2; RFC 9528 names
  it for EDHOC over CoAP). A message_1 without a valid Echo is answered 4.01
  Unauthorized carrying a fresh Echo value; the initiator repeats message_1 with that value
  (``edhoc_client`` does). The value is stateless (RFC 9175 Appendix A: a MAC over a timestamp
  and the client's address): 4 bytes of time, then 8 bytes of HMAC-SHA256 over the time and the
  source address under a key that never leaves the process. It is valid for
  ``echo_lifetime_s`` and only from the address it was sent to, so a sender that cannot
  receive at the address it claims (a spoofed-source flood) never gets past it.
- **A per-source rate limit**: a token bucket per source address (``rate_per_source`` message_1
  per second, ``burst`` at once). A message_1 beyond it is answered 4.29 Too Many Requests
  (RFC 8516) with Max-Age saying when to try again, before any cryptography runs. The bucket
  table is bounded (``max_sources``, least recently seen dropped first): a flood from many
  invented addresses resets buckets, it cannot grow memory.

Sources are IP addresses without the port: a flooder can change its port at will.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiocoap

ECHO_LIFETIME_S = 30.0
_TIME_BYTES, _MAC_BYTES = 4, 8
TOO_MANY_REQUESTS = aiocoap.numbers.codes.Code.TOO_MANY_REQUESTS  # 4.29, RFC 8516


@dataclass(frozen=True)
class GateConfig:
    return_routability: bool = False
    rate_per_source: float | None = None  # message_1 per second per source; None: no limit
    burst: int = 5
    max_sources: int = 4096
    echo_lifetime_s: float = ECHO_LIFETIME_S

    @property
    def active(self) -> bool:
        return self.return_routability or self.rate_per_source is not None


@dataclass
class GateStats:
    echo_challenges: int = 0  # 4.01 + Echo sent
    echo_verified: int = 0  # message_1 admitted with a valid Echo
    echo_invalid: int = 0  # an Echo that was stale, forged or from another address
    rate_limited: int = 0  # 4.29 sent


def source_of(remote: Any) -> str:
    """The IP address of a CoAP remote (no port), or its text form where there is none."""
    sockaddr = getattr(remote, "sockaddr", None)
    if isinstance(sockaddr, tuple) and sockaddr:
        return str(sockaddr[0])
    return str(getattr(remote, "hostinfo", remote))


class HandshakeGate:
    def __init__(
        self,
        config: GateConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        key: bytes | None = None,
    ) -> None:
        if config.rate_per_source is not None and config.rate_per_source <= 0:
            raise ValueError("rate_per_source must be positive (None: no limit)")
        self.config = config
        self.stats = GateStats()
        self._clock = clock
        self._wallclock = wallclock
        self._key = key or secrets.token_bytes(32)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def check(self, request: aiocoap.Message) -> aiocoap.Message | None:
        """None: go on with this message_1. Otherwise the answer to send instead (no state
        kept for the sender beyond its rate-limit bucket)."""
        source = source_of(request.remote)
        if self.config.rate_per_source is not None:
            wait = self._take(source, self.config.rate_per_source)
            if wait is not None:
                self.stats.rate_limited += 1
                return aiocoap.Message(
                    code=TOO_MANY_REQUESTS,
                    max_age=max(1, math.ceil(wait)),
                    payload=b"EDHOC message_1 rate limit",
                )
        if self.config.return_routability:
            echo = request.opt.echo
            if echo is not None and self.valid(echo, source):
                self.stats.echo_verified += 1
                return None
            if echo is not None:
                self.stats.echo_invalid += 1
            self.stats.echo_challenges += 1
            return aiocoap.Message(code=aiocoap.UNAUTHORIZED, echo=self.echo_for(source), max_age=0)
        return None

    # -- Echo values -----------------------------------------------------------------------

    def echo_for(self, source: str) -> bytes:
        stamp = int(self._wallclock()).to_bytes(_TIME_BYTES, "big")
        return stamp + self._mac(stamp, source)

    def valid(self, echo: bytes, source: str) -> bool:
        if len(echo) != _TIME_BYTES + _MAC_BYTES:
            return False
        stamp, mac = echo[:_TIME_BYTES], echo[_TIME_BYTES:]
        if not hmac.compare_digest(mac, self._mac(stamp, source)):
            return False
        age = self._wallclock() - int.from_bytes(stamp, "big")
        return -1.0 <= age <= self.config.echo_lifetime_s

    def _mac(self, stamp: bytes, source: str) -> bytes:
        return hmac.new(self._key, stamp + source.encode(), hashlib.sha256).digest()[:_MAC_BYTES]

    # -- rate limit ------------------------------------------------------------------------

    def _take(self, source: str, rate: float) -> float | None:
        """Take a token from ``source``'s bucket: None if there was one, else the seconds
        until there is."""
        now = self._clock()
        burst = float(max(1, self.config.burst))
        tokens, at = self._buckets.pop(source, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        admitted = tokens >= 1.0
        if admitted:
            tokens -= 1.0
        self._buckets[source] = (tokens, now)  # most recently seen last
        while len(self._buckets) > self.config.max_sources:
            self._buckets.popitem(last=False)
        return None if admitted else (1.0 - tokens) / rate

    @property
    def tracked_sources(self) -> int:
        return len(self._buckets)
