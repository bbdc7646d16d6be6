"""The one interface every bootstrap profile implements, and what a bootstrap reports.

A profile takes a thing from ``installed`` to ``operational`` with one trust center: it sets up
a secure channel with the factory identity, sends the CSR for the operational certificate
(LDevID) and returns what it got and what it cost. Profiles: ``edhoc-oscore`` (this package's
``edhoc_oscore``), ``dtls-cert`` and ``dtls-psk`` (``dtls_coaps``). A profile never raises for a
failed bootstrap: failure is an outcome with a reason, because the testbed measures failures
(under loss, with revoked devices, ...) as much as successes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from testbed.node.bootstrap.accounting import DatagramRecord, MessageCost, summarize


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"


class FailureReason(enum.Enum):
    CONFIGURATION = "configuration"  # own credentials or trust center reference unusable
    TIMEOUT = "timeout"  # no complete answer within the deadline (loss, dead trust center)
    UNREACHABLE = "unreachable"  # the network said no (ICMP unreachable, no route)
    HANDSHAKE_REFUSED = "handshake-refused"  # the trust center refused our factory credential
    PEER_AUTHENTICATION = "peer-authentication"  # the trust center did not prove its identity
    ENROLLMENT_REFUSED = "enrollment-refused"  # channel up, enrollment answered with an error
    PROTOCOL_ERROR = "protocol-error"  # an answer that does not parse


@dataclass(frozen=True)
class FactoryIdentity:
    """The thing's manufacturer-installed credentials; each profile uses the ones it needs."""

    private_key: Path  # device key, PEM or COSE_Key, mode 0600
    idevid: Path | None = None  # X.509 IDevID (dtls-cert)
    ccs: Path | None = None  # the same public key as a CCS (edhoc-oscore)
    psk: Path | None = None  # pre-shared factory key (dtls-psk)


@dataclass(frozen=True)
class TrustCenterRef:
    uri: str  # e.g. "coap://[fd12:3456:789a:1::10]"
    ccs: Path | None = None  # the trust center's EDHOC credential (edhoc-oscore)
    ca_certificate: Path | None = None  # anchor for the trust center's certificate (dtls-cert)


@dataclass(frozen=True)
class BootstrapContext:
    node: str
    identity: FactoryIdentity
    trust_center: TrustCenterRef
    csr_der: bytes  # PKCS#10 request for the LDevID; the thing keeps the operational key
    timeout_s: float = 120.0
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OscoreGrant:
    """An OSCORE security context the trust center hands out (backend, group, ...)."""

    purpose: str
    sender_id: bytes
    recipient_id: bytes
    master_secret: bytes = field(repr=False)
    master_salt: bytes = field(default=b"", repr=False)
    id_context: bytes | None = None
    generation: int = 0  # bumped by the trust center on every re-keying
    # Group contexts only: accepted senders' CCS by sender ID, the group manager's CCS.
    peers: tuple[tuple[bytes, bytes], ...] = ()
    manager_credential: bytes | None = None


@dataclass(frozen=True)
class Enrollment:
    ldevid_der: bytes
    oscore_contexts: tuple[OscoreGrant, ...] = ()


@dataclass(frozen=True)
class BootstrapResult:
    profile: str
    outcome: Outcome
    duration_s: float
    messages: tuple[MessageCost, ...]
    reason: FailureReason | None = None
    detail: str = ""
    enrollment: Enrollment | None = None
    # The CoAP response code of the answer that ended a failed run ("4.03"), where there was one,
    # and the trust center's refusal reason code from its payload (enrollment_api.RefusalReason):
    # a caller decides from these whether retrying can help.
    code: str | None = None
    refusal: str | None = None

    @classmethod
    def measured(
        cls,
        profile: str,
        duration_s: float,
        records: list[DatagramRecord],
        *,
        reason: FailureReason | None = None,
        detail: str = "",
        enrollment: Enrollment | None = None,
        code: str | None = None,
        refusal: str | None = None,
    ) -> BootstrapResult:
        """A result whose outcome follows from ``reason`` (None: success)."""
        return cls(
            profile,
            Outcome.SUCCESS if reason is None else Outcome.FAILURE,
            duration_s,
            summarize(records),
            reason,
            detail,
            enrollment,
            code,
            refusal,
        )

    @property
    def retransmissions(self) -> int:
        return sum(m.retransmissions for m in self.messages)

    def total(self, direction: str) -> tuple[int, int]:
        """(bytes, datagrams) sent or received, retransmissions included."""
        chosen = [m for m in self.messages if m.direction == direction]
        return sum(m.bytes for m in chosen), sum(m.datagrams for m in chosen)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the control API and reports (no key material)."""
        return {
            "profile": self.profile,
            "outcome": self.outcome.value,
            "reason": None if self.reason is None else self.reason.value,
            "detail": self.detail,
            "code": self.code,
            "refusal": self.refusal,
            "duration_s": self.duration_s,
            "retransmissions": self.retransmissions,
            "messages": [
                {
                    "message": m.message,
                    "direction": m.direction,
                    "bytes": m.bytes,
                    "datagrams": m.datagrams,
                    "retransmissions": m.retransmissions,
                    "message_bytes": m.message_bytes,
                }
                for m in self.messages
            ],
            "ldevid_bytes": None if self.enrollment is None else len(self.enrollment.ldevid_der),
            "oscore_contexts": []
            if self.enrollment is None
            else [g.purpose for g in self.enrollment.oscore_contexts],
        }


class BootstrapProfile(Protocol):
    name: str

    async def bootstrap(self, ctx: BootstrapContext) -> BootstrapResult: ...
