"""Group commands under the domain's group key: Group OSCORE group mode over aiocoap.

The trust center keeps one group key per domain (``trust_center.contexts``: group id, master
secret and salt, a generation that moves on whenever a member leaves). A group command (for
example "all luminaires off") is one CoAP request, sent once to a PAN multicast address and
acted on by every member that holds the current generation.

What is used of draft-ietf-core-oscore-groupcomm (Group OSCORE), and how:

- **Group mode**, aiocoap's ``SimpleGroupContext``: the request is encrypted with the Group
  Encryption Algorithm under the sender key derived from the group's master secret and the
  sender ID, and *signed* with the sender's private key (countersignature, encrypted with the
  Signature Encryption Key). Members verify it with the sender's authentication credential.
  That signature is what makes a shared key usable for commands: every member holds the
  master secret, so without it any member could forge "all off" to the others; with it only
  the holder of the commander's private key can.
- Algorithms: AES-CCM-16-64-128 for both the AEAD and the Group Encryption Algorithm, SHA-256,
  ECDSA with SHA-256 on P-256 for signatures (the keys and CCS credentials the testbed already
  has: a thing's device key, a backend's host key). The testbed's CCS carry no ``alg`` in their
  COSE key (EDHOC does not need one), so ``P256Signature`` reads them with the testbed's own
  credential parser instead of aiocoap's, which insists on ``alg: -7``.
- The commander is the group member with sender ID ``GROUP_COMMANDER_ID`` (0x00, never a
  thing's ID); members know its credential and accept group requests from it only.
- Requests are non-confirmable and carry No-Response (RFC 7967) for every class: a multicast
  request answered by every member would cost N responses on the air and a response key per
  member at the commander. Whether a member acted is read back over its pairwise context.

What aiocoap 0.4 (``SimpleGroupContext``) does not provide, and what stands in for it:

- No Group Manager interface (draft-ietf-ace-key-groupcomm-oscore): the trust center hands the
  group key out with a thing's other contexts, over the same EDHOC-protected enrollment.
- No persistence: sequence numbers and replay windows live in memory. A member that restarts
  starts an empty replay window for the commander (a command recorded before the restart
  would be accepted once more: a known gap). A commander that restarts must not reuse
  sequence numbers under the same key (AES-CCM nonce reuse), so ``commander`` starts its
  sequence number at the wall clock in tenths of a second: later than any number an earlier
  process used, unless it sent more than ten commands a second on average.
- No rekeying inside the context: a new generation is a new context (new group id, secret
  and salt), built from the new grant.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import oscore
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.node.coap.credentials import Credential
from testbed.node.coap.errors import CredentialError

#: All CoAP Nodes, site-local scope (RFC 7252 Section 12.8): reaches every member on the PAN.
ALL_COAP_NODES_SITE = "ff05::fd"
GROUP_COMMANDER_ID = b"\x00"  # trust_center.contexts.GROUP_COMMANDER_ID
NO_RESPONSE_ALL = 2 | 8 | 16  # RFC 7967: not interested in 2.xx, 4.xx or 5.xx
CF_CBOR = 60

IF_INET6 = Path("/proc/net/if_inet6")
AEAD = oscore.algorithms["AES-CCM-16-64-128"]
HASH = oscore.hashfunctions["sha256"]


class P256Signature(oscore.ECDSA_SHA256_P256):  # type: ignore[misc]
    """ECDSA P-256 whose credentials are the testbed's CCS (a COSE EC2 key without ``alg``)."""

    def from_kccs(self, ccs: bytes) -> Any:
        try:
            return Credential.from_cbor(ccs).public_key()
        except CredentialError as exc:
            raise ValueError(f"not a P-256 CCS: {exc}") from exc


SIGNATURE = P256Signature()


class GroupRefused(ValueError):
    """A datagram that is not a group command this member may act on; ``reason`` says why:
    ``not-oscore``, ``foreign-group`` (no context for its group id and sender: another group,
    another generation, another sender), ``invalid`` (decryption or signature failed),
    ``replay``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class GroupKey:
    """One generation of a domain's group key, as the trust center hands it out."""

    group_id: bytes
    master_secret: bytes
    master_salt: bytes
    generation: int


class _GroupContext(oscore.SimpleGroupContext):  # type: ignore[misc]
    """aiocoap's group context whose receiving aspects survive a replay check: aiocoap 0.4's
    ``_GroupContextAspect`` lacks the Echo-recovery attribute its replay check reads
    (AttributeError instead of ReplayError); group requests have no Echo recovery."""

    def get_oscore_context_for(self, unprotected: Any) -> Any:
        aspect = super().get_oscore_context_for(unprotected)
        if aspect is not None and not hasattr(aspect, "echo_recovery"):
            aspect.echo_recovery = None
        return aspect


def context(
    key: GroupKey,
    sender_id: bytes,
    private_key: ec.EllipticCurvePrivateKey,
    own_credential: bytes,
    peers: Mapping[bytes, bytes],
    manager_credential: bytes,
) -> oscore.SimpleGroupContext:
    """A group-mode context: this party sends as ``sender_id`` and accepts ``peers``
    (sender ID -> CCS). ``manager_credential`` (the trust center's CCS) enters every
    message's external AAD, so both ends must agree on it."""
    return _GroupContext(
        alg_aead=AEAD,
        hashfun=HASH,
        alg_signature=SIGNATURE,
        alg_group_enc=AEAD,
        alg_pairwise_key_agreement=SIGNATURE,
        group_id=key.group_id,
        master_secret=key.master_secret,
        master_salt=key.master_salt,
        sender_id=sender_id,
        private_key=private_key,
        sender_auth_cred=own_credential,
        peers=dict(peers),
        group_manager_cred=manager_credential,
    )


def commander(
    key: GroupKey,
    private_key: ec.EllipticCurvePrivateKey,
    own_credential: bytes,
    manager_credential: bytes,
    sender_id: bytes = GROUP_COMMANDER_ID,
) -> oscore.SimpleGroupContext:
    """The sending side of group commands (no peers: it wants no responses)."""
    ctx = context(key, sender_id, private_key, own_credential, {}, manager_credential)
    ctx.sender_sequence_number = int(time.time() * 10)
    return ctx


def command(path: str, payload: bytes, *, host: str = ALL_COAP_NODES_SITE) -> aiocoap.Message:
    """The plain group request: NON PUT of a CBOR ``payload``, no responses wanted."""
    message = aiocoap.Message(
        code=Code.PUT,
        transport_tuning=aiocoap.Unreliable,
        uri=f"coap://[{host}]/{path.lstrip('/')}",
        payload=payload,
        content_format=CF_CBOR,
    )
    message.opt.no_response = NO_RESPONSE_ALL
    return message


def protect(ctx: oscore.SimpleGroupContext, message: aiocoap.Message) -> bytes:
    """The UDP payload of ``message`` protected in group mode (signed by ``ctx``'s sender)."""
    protected, _request_id = ctx.protect(message)
    protected.mtype = Type.NON
    protected.mid = secrets.randbits(16)
    protected.token = secrets.token_bytes(4)
    return bytes(protected.encode())


def unprotect(contexts: list[oscore.SimpleGroupContext], datagram: bytes) -> aiocoap.Message:
    """The plain request in ``datagram``, if one of ``contexts`` accepts it; GroupRefused if
    none does. Group mode only: a pairwise-mode request is refused."""
    try:
        outer = aiocoap.Message.decode(datagram)
    except Exception as exc:  # aiocoap raises several types for garbage
        raise GroupRefused("not-oscore", f"not a CoAP message: {exc!r}") from exc
    if outer.opt.oscore is None:
        raise GroupRefused("not-oscore", "no OSCORE option")
    try:
        unprotected = oscore.verify_start(outer)
    except oscore.ProtectionInvalid as exc:
        raise GroupRefused("invalid", str(exc)) from exc
    if oscore.COSE_COUNTERSIGNATURE0 not in unprotected:
        raise GroupRefused("foreign-group", "not a group-mode message (no countersignature)")
    for ctx in contexts:
        aspect = ctx.get_oscore_context_for(unprotected)
        if aspect is None:
            continue
        try:
            plain, _request_id = aspect.unprotect(outer)
        except oscore.ReplayError as exc:
            raise GroupRefused("replay", str(exc)) from exc
        except (oscore.ProtectionInvalid, ValueError) as exc:
            raise GroupRefused("invalid", str(exc)) from exc
        plain.remote = outer.remote
        return plain
    kid = unprotected.get(oscore.COSE_KID, b"")
    gid = unprotected.get(oscore.COSE_KID_CONTEXT, b"")
    raise GroupRefused(
        "foreign-group", f"no context for group id {bytes(gid).hex()} sender {bytes(kid).hex()}"
    )


def interface_holding(address: str, if_inet6: Path = IF_INET6) -> str | None:
    """The name of the interface that holds ``address`` (None: no such local address)."""
    wanted = ipaddress.IPv6Address(address).packed.hex()
    try:
        lines = if_inet6.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[0] == wanted:
            return fields[5]
    return None
