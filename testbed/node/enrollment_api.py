"""The CoAP API of a trust center, shared by the trust center, things and backends.

Everything below runs over OSCORE derived from EDHOC (testbed.node.coap): the trust center knows
which authenticated credential (kid) sent each request. Payloads are CBOR maps with the integer
keys below (compact on a constrained link).

Thing (initiator with its factory key):
    POST /.well-known/est/sen   payload: PKCS#10 CSR (DER, content-format 286)
   [?name=N&class=C&port=P]     2.04 + LDevID (DER, content-format 287), or a refusal.
                                Optional Uri-Query: the thing's node name and device class
                                (1-64 printable characters each) and the UDP port it serves
                                CoAP on (default 5683), shown in /things; the trust center
                                knows serial, vendor and model from the device record.
                                Enrolling again (say, the answer was lost) is allowed: a new
                                LDevID with a new serial, the older one revoked as superseded,
                                a new OSCORE context generation.
    POST /.well-known/est/sren  the same, for a thing that is enrolled already (else 4.03
                                not-enrolled): a new LDevID and a new context generation
    GET  /.well-known/est/crts  2.05 + domain CA certificate (DER, 287); also unprotected
    GET  /cfg/oscore            2.05 + {K_CONTEXTS: [context, ...]} once enrolled: purpose
                                "backend" (the thing <-> backend context, new generation on
                                every enrollment) and "group" (the domain's group key, the
                                same for every member, with K_GROUP_PEERS: the backends'
                                group sender IDs and CCS, whose signed group commands it
                                accepts, and K_GROUP_MANAGER: the trust center's CCS)
    GET  /crl                   2.05 + the domain CRL (DER); also unprotected

Backend (initiator with its host key, listed under backends/ at the trust center):
    GET  /things                2.05 + {K_THINGS: [thing, ...]}: every operational thing with
                                its address and the backend side of its OSCORE context
                                (K_DEVICE_CLASS only when the thing reported one), and
                                K_GROUP: the backend's sending view of the group context
                                (once a member has it)

Refusals: 4.03 with payload {K_REASON: "<reason code>", K_DETAIL: "<text>"}; the reason codes
are the values of RefusalReason. 4.01 for requests that did not come over OSCORE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

EST_SIMPLE_ENROLL = "/.well-known/est/sen"
EST_SIMPLE_REENROLL = "/.well-known/est/sren"
EST_CA_CERTS = "/.well-known/est/crts"
OSCORE_CONFIG = "/cfg/oscore"
CRL = "/crl"
THINGS = "/things"

# Uri-Query keys of /est/sen and /est/sren (what the thing reports about itself)
Q_NAME = "name"
Q_DEVICE_CLASS = "class"
Q_PORT = "port"

# K_PURPOSE values of the contexts /cfg/oscore hands out: one "backend:<name>" per backend of
# the domain (the thing's view), "group" for the domain's group. /things shows a backend its
# side of its own context with the plain purpose "backend".
PURPOSE_BACKEND = "backend"
PURPOSE_GROUP = "group"


def backend_purpose(backend: str) -> str:
    return f"{PURPOSE_BACKEND}:{backend}"


def is_backend_purpose(purpose: str) -> bool:
    return purpose == PURPOSE_BACKEND or purpose.startswith(PURPOSE_BACKEND + ":")


CF_PKCS10 = 286
CF_PKIX_CERT = 287
CF_CBOR = 60

# CBOR map keys
K_REASON = 1
K_DETAIL = 2
K_CONTEXTS = 3
K_THINGS = 4
# an OSCORE context (RFC 8613 parameters), from the receiver's point of view
K_PURPOSE = 10
K_SENDER_ID = 11
K_RECIPIENT_ID = 12
K_MASTER_SECRET = 13
K_MASTER_SALT = 14
K_ID_CONTEXT = 15
K_GENERATION = 16
K_GROUP_PEERS = 17  # group contexts: {sender ID: CCS} of the members it accepts requests from
K_GROUP_MANAGER = 18  # group contexts: the group manager's (trust center's) CCS
# a thing in /things
K_NAME = 20
K_SERIAL = 21
K_ADDRESS = 22
K_VENDOR = 23
K_MODEL = 24
K_DEVICE_CLASS = 25
K_CONTEXT = 26
K_PORT = 27
K_GROUP = 28  # /things: the backend's view of the domain's group context (absent before any member)


class RefusalReason(enum.Enum):
    """Why a trust center refused a pledge; recorded in its registry and exported as a label."""

    UNKNOWN_DEVICE = "unknown-device"  # no imported voucher/device record for this credential
    VENDOR_NOT_TRUSTED = "vendor-not-trusted"  # the domain does not trust the device's vendor
    VOUCHER_INVALID = "voucher-invalid"  # the chain does not verify
    VOUCHER_FOREIGN_OWNER = "voucher-foreign-owner"  # valid chain, ends at another owner
    IDEVID_INVALID = "idevid-invalid"  # IDevID does not chain to the vendor CA / key mismatch
    REVOKED = "revoked"  # revoked or decommissioned
    BAD_CSR = "bad-csr"  # CSR unparsable, bad signature, wrong serial
    NOT_ENROLLED = "not-enrolled"  # asked for contexts before enrolling
    NOT_AUTHORIZED = "not-authorized"  # a credential without the right for that resource
    NAME_TAKEN = "name-taken"  # reports a name bound to another thing, or not its record's


@dataclass(frozen=True)
class OscoreContextGrant:
    """One OSCORE security context handed out by the trust center, seen by its receiver."""

    purpose: str  # PURPOSE_BACKEND (thing <-> backend) or PURPOSE_GROUP (the domain's group)
    sender_id: bytes
    recipient_id: bytes
    master_secret: bytes
    master_salt: bytes
    id_context: bytes | None
    generation: int  # bumped on every re-keying; old generations stop working
    # Group contexts only (Group OSCORE group mode): the authentication credentials (CCS) of
    # the senders this member accepts, by sender ID, and the group manager's credential.
    peers: tuple[tuple[bytes, bytes], ...] = ()
    manager_credential: bytes | None = None

    def to_cbor_map(self) -> dict[int, Any]:
        data: dict[int, Any] = {
            K_PURPOSE: self.purpose,
            K_SENDER_ID: self.sender_id,
            K_RECIPIENT_ID: self.recipient_id,
            K_MASTER_SECRET: self.master_secret,
            K_MASTER_SALT: self.master_salt,
            K_ID_CONTEXT: self.id_context,
            K_GENERATION: self.generation,
        }
        if self.peers:
            data[K_GROUP_PEERS] = dict(self.peers)
        if self.manager_credential is not None:
            data[K_GROUP_MANAGER] = self.manager_credential
        return data

    @classmethod
    def from_cbor_map(cls, data: dict[int, Any]) -> OscoreContextGrant:
        return cls(
            purpose=str(data[K_PURPOSE]),
            sender_id=bytes(data[K_SENDER_ID]),
            recipient_id=bytes(data[K_RECIPIENT_ID]),
            master_secret=bytes(data[K_MASTER_SECRET]),
            master_salt=bytes(data.get(K_MASTER_SALT) or b""),
            id_context=None if data.get(K_ID_CONTEXT) is None else bytes(data[K_ID_CONTEXT]),
            generation=int(data.get(K_GENERATION, 0)),
            peers=tuple(
                sorted((bytes(k), bytes(v)) for k, v in dict(data.get(K_GROUP_PEERS) or {}).items())
            ),
            manager_credential=(
                None if data.get(K_GROUP_MANAGER) is None else bytes(data[K_GROUP_MANAGER])
            ),
        )

    def mirrored(self) -> OscoreContextGrant:
        """The other end's view of the same context (sender and recipient swapped)."""
        return OscoreContextGrant(
            self.purpose,
            self.recipient_id,
            self.sender_id,
            self.master_secret,
            self.master_salt,
            self.id_context,
            self.generation,
            self.peers,
            self.manager_credential,
        )
