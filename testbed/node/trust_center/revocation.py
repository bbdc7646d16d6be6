"""The domain CRL: built from the registry's revoked certificates, signed by the domain CA.

Built lazily: re-enrollments revoke superseded certificates all the time, and signing a CRL of
every revoked certificate on each of them would make n enrollments cost O(n^2). The CRL is
rebuilt when someone asks for it after a change (``/crl``, the ``revoke`` action), or when the
cached one is half-way to its nextUpdate. Every build takes the next CRL number from the
registry (durable), so numbers only grow, across restarts too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from testbed.node.trust_center.registry import Registry
from testbed.pki import CertificateAuthority, Revocation, build_crl
from testbed.pki.crl import CRL_VALIDITY

# CRL reason codes by their RFC 5280 / cryptography names; "superseded" is the registry's own
# for a certificate replaced by a re-enrollment.
REASONS = {flag.value: flag for flag in x509.ReasonFlags}


def parse_reason(value: str) -> x509.ReasonFlags:
    """'cessationOfOperation' (the RFC 5280 spelling) or 'cessation_of_operation'."""
    flag = REASONS.get(value) or getattr(x509.ReasonFlags, value, None)
    if not isinstance(flag, x509.ReasonFlags):
        raise ValueError(f"unknown revocation reason {value!r}; one of {', '.join(REASONS)}")
    return flag


@dataclass(frozen=True)
class PublishedCrl:
    number: int
    der: bytes
    entries: int
    built_at: float


class CrlPublisher:
    def __init__(
        self,
        ca: CertificateAuthority,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ca = ca
        self.registry = registry
        self._clock = clock
        self._current: PublishedCrl | None = None
        self._dirty = True

    def invalidate(self) -> None:
        self._dirty = True

    def current(self) -> PublishedCrl:
        now = self._clock()
        stale = (
            self._current is None or now - self._current.built_at > CRL_VALIDITY.total_seconds() / 2
        )
        if self._dirty or stale:
            self._current = self._build(now)
            self._dirty = False
        assert self._current is not None
        return self._current

    def _build(self, now: float) -> PublishedCrl:
        revoked = self.registry.revoked_certificates()
        entries = [
            Revocation(
                r.serial,
                datetime.fromtimestamp(r.revoked_at, UTC),
                _crl_reason(r.reason),
            )
            for r in revoked
        ]
        number = self.registry.next_crl_number()
        crl = build_crl(self.ca, entries, number, now=datetime.fromtimestamp(now, UTC))
        return PublishedCrl(number, crl.public_bytes(Encoding.DER), len(entries), now)


def _crl_reason(value: str | None) -> x509.ReasonFlags | None:
    if value is None:
        return None
    try:
        flag = parse_reason(value)
    except ValueError:
        return None
    # RFC 5280 5.3.1: "unspecified" SHOULD NOT be used; leave the extension out instead.
    return None if flag is x509.ReasonFlags.unspecified else flag
