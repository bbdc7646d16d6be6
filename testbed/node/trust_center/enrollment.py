"""The procedures behind the trust center's CoAP API, free of CoAP.

Each takes the EDHOC-authenticated peer credential (the resources have already answered 4.01
to anything else) and either returns what to answer or raises ``Refused``. Every refusal is
recorded in the registry and counted before it propagates (``record_refusal``), so that the
registry is the complete account of what the trust center turned away, and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import cbor2
from cryptography import x509

from testbed.errors import PkiError
from testbed.node.coap.credentials import Credential
from testbed.node.enrollment_api import (
    K_ADDRESS,
    K_CONTEXT,
    K_DEVICE_CLASS,
    K_GROUP,
    K_MODEL,
    K_NAME,
    K_PORT,
    K_SERIAL,
    K_THINGS,
    K_VENDOR,
    PURPOSE_BACKEND,
    OscoreContextGrant,
    RefusalReason,
)
from testbed.node.logs import EventLog
from testbed.node.material import COAP_PORT
from testbed.node.trust_center import contexts, naming
from testbed.node.trust_center.admission import AdmissionPolicy, Refused
from testbed.node.trust_center.devices import DeviceRecord
from testbed.node.trust_center.metrics import UNKNOWN, TrustCenterMetrics
from testbed.node.trust_center.refusal_log import RefusalLog
from testbed.node.trust_center.registry import (
    ENROLLED,
    IMPORTED,
    REFUSED,
    REVOKED,
    Issued,
    Refusal,
    Registry,
    Thing,
)
from testbed.node.trust_center.revocation import CrlPublisher
from testbed.node.trust_center.scope import BackendScope, visible
from testbed.node.trust_center.trust import TrustAnchors
from testbed.pki import issue_ldevid

# Refusals of these reasons at /est/sen or /est/sren move an imported thing to "refused".
_ADMISSION_REASONS = frozenset(RefusalReason) - {
    RefusalReason.REVOKED,
    RefusalReason.NOT_ENROLLED,
    RefusalReason.NOT_AUTHORIZED,
}


@dataclass(frozen=True)
class Reported:
    """What a thing says about itself at enrollment (enrollment_api Q_NAME, Q_DEVICE_CLASS,
    Q_PORT). Shown to backends; never used as a metric label. The name is admitted only as
    ``naming`` allows (bound to the record, unique in the domain)."""

    name: str | None = None
    device_class: str | None = None
    port: int | None = None


class Enrollment:
    def __init__(
        self,
        policy: AdmissionPolicy,
        registry: Registry,
        crl: CrlPublisher,
        log: EventLog,
        metrics: TrustCenterMetrics | None = None,
        backend_scope: BackendScope | None = None,
    ) -> None:
        self.backend_scope: BackendScope = backend_scope or {}
        self.policy = policy
        self.registry = registry
        self.crl = crl
        self.log = log
        self.metrics = metrics
        # Backends poll; a backend's list changes only when the registry does.
        self._things_cache: dict[str, tuple[tuple[int, int], bytes]] = {}
        # Set by the service: refusal rows are then written off the event loop, in batches.
        self.refusal_log: RefusalLog | None = None

    @property
    def trust(self) -> TrustAnchors:
        return self.policy.trust

    # -- /.well-known/est/sen and /sren ----------------------------------------------------

    def enroll(
        self,
        peer: Credential,
        csr_der: bytes,
        content_format: int | None,
        *,
        address: str | None,
        reported: Reported = Reported(),
        reenroll: bool = False,
    ) -> Issued:
        try:
            return self._enroll(peer, csr_der, content_format, address, reported, reenroll)
        except Refused as refused:
            self.record_refusal(refused, peer.kid, enrollment=True)
            raise

    def _enroll(
        self,
        peer: Credential,
        csr_der: bytes,
        content_format: int | None,
        address: str | None,
        reported: Reported,
        reenroll: bool,
    ) -> Issued:
        record = self.policy.record_for(peer)
        self.policy.check_device(record)
        thing = self.registry.thing(record.serial)
        if thing is None:  # records are synced at start and import; this is a safety net
            self.registry.ensure_imported(
                [(record.serial, record.vendor, record.model, record.kid)]
            )
            thing = self.registry.thing(record.serial)
            assert thing is not None
        if thing.state == REVOKED:
            raise Refused(RefusalReason.REVOKED, f"{record.serial} is revoked", record)
        if reenroll and thing.state != ENROLLED:
            raise Refused(
                RefusalReason.NOT_ENROLLED,
                f"{record.serial} has no LDevID to renew (state {thing.state})",
                record,
            )
        name = naming.admit_name(self.registry, record, thing, reported.name)
        admitted = self.policy.check_csr(record, csr_der, content_format)
        domain = self.trust.domain

        def issue(serial_number: int) -> x509.Certificate:
            return issue_ldevid(
                domain,
                admitted.csr,
                serial_number,
                expected_serial=record.serial,
                expected=admitted.name,
            )

        try:
            issued = self.registry.enroll(
                record.serial,
                issue,
                address=address,
                name=name,
                device_class=reported.device_class,
                port=reported.port,
            )
        except PkiError as exc:
            raise Refused(RefusalReason.BAD_CSR, exc.message, record) from exc
        if issued.superseded:
            self.crl.invalidate()
        if self.metrics is not None:
            self.metrics.certificates.inc()
        self.publish_registry()
        self.log.info(
            "enrollment.issued",
            serial=record.serial,
            vendor=record.vendor,
            certificate=issued.certificate.serial_number,
            generation=issued.thing.oscore_generation,
            superseded=list(issued.superseded),
            reenroll=reenroll,
            address=address,
        )
        return issued

    # -- /cfg/oscore: a context per backend, and the domain's group context ------------------

    def _backend_slots(self) -> dict[str, int]:
        return contexts.backend_slots({name for name, _ in self.trust.backends.values()})

    def _commanders(self) -> dict[bytes, bytes]:
        """Each backend's group sender ID and CCS: the senders members accept."""
        slots = self._backend_slots()
        return {
            contexts.commander_id(slots[name]): credential.encoded
            for name, credential in self.trust.backends.values()
        }

    def group_for_backend(self, name: str) -> OscoreContextGrant | None:
        """The backend's commander view of the current group key (None before any member)."""
        if self.registry.group_generation == 0:
            return None
        key = self.registry.group_key()
        return contexts.commander_view(
            self._backend_slots()[name],
            key.group_id,
            key.master_secret,
            key.master_salt,
            key.generation,
            self.trust.identity.credential.encoded,
        )

    def contexts(self, peer: Credential) -> list[OscoreContextGrant]:
        try:
            record = self.policy.record_for(peer)
            thing = self.registry.thing(record.serial)
            if thing is not None and thing.state == REVOKED:
                raise Refused(RefusalReason.REVOKED, f"{record.serial} is revoked", record)
            grant = None if thing is None or thing.state != ENROLLED else thing.grant()
            if grant is None:
                raise Refused(
                    RefusalReason.NOT_ENROLLED, f"{record.serial} has not enrolled yet", record
                )
        except Refused as refused:
            self.record_refusal(refused, peer.kid)
            raise
        key = self.registry.group_key()  # made by the first member that asks
        self.publish_registry()  # so the generation gauge leaves 0 then (one small query)
        group = contexts.group_view(
            grant.sender_id,
            key.group_id,
            key.master_secret,
            key.master_salt,
            key.generation,
            commanders=self._commanders(),
            manager_credential=self.trust.identity.credential.encoded,
        )
        pairwise = [
            contexts.for_backend(grant, name, slot) for name, slot in self._backend_slots().items()
        ]
        return [*pairwise, group]

    # -- /things ---------------------------------------------------------------------------

    def things_payload(self, peer: Credential) -> bytes:
        backend = self.trust.backends.get(peer.kid)
        if backend is None or backend[1].encoded != peer.encoded:
            refused = Refused(
                RefusalReason.NOT_AUTHORIZED,
                f"kid {peer.kid.hex()} is not a backend of this domain",
                self.policy.devices.by_kid(peer.kid),
            )
            self.record_refusal(refused, peer.kid)
            raise refused
        name = backend[0]
        cached = self._things_cache.get(name)
        version = (self.registry.version, self.registry.group_generation)
        if cached is None or cached[0] != version:
            slot = self._backend_slots()[name]
            entries = [
                self._thing_entry(t, name, slot)
                for t in self.registry.things(ENROLLED)
                # Restricted by the cross-domain policy: only the things it may talk to.
                if name not in self.backend_scope or visible(self.backend_scope, name, t.serial)
            ]
            body: dict[int, Any] = {K_THINGS: entries}
            group = self.group_for_backend(name)
            if group is not None:
                body[K_GROUP] = group.to_cbor_map()
            cached = (version, cbor2.dumps(body))
            self._things_cache[name] = cached
        return cached[1]

    @staticmethod
    def _thing_entry(thing: Thing, backend: str, slot: int) -> dict[int, Any]:
        stored = thing.grant()
        # This backend's own context with the thing, from its side; "backend" as purpose.
        grant = (
            None
            if stored is None
            else replace(contexts.for_backend(stored, backend, slot), purpose=PURPOSE_BACKEND)
        )
        entry: dict[int, Any] = {
            K_NAME: thing.name,
            K_SERIAL: thing.serial,
            K_ADDRESS: thing.address,
            K_PORT: thing.port or COAP_PORT,
            K_VENDOR: thing.vendor,
            K_MODEL: thing.model,
            K_CONTEXT: None if grant is None else grant.mirrored().to_cbor_map(),
        }
        if thing.device_class is not None:
            entry[K_DEVICE_CLASS] = thing.device_class
        return entry

    # -- bookkeeping -----------------------------------------------------------------------

    def record_refusal(
        self, refused: Refused, kid: bytes | None, *, enrollment: bool = False
    ) -> None:
        record: DeviceRecord | None = refused.record
        serial = record.serial if record is not None else None
        vendor = record.vendor if record is not None else None
        row = None
        if self.refusal_log is None:
            self.registry.record_refusal(
                kid=kid,
                serial=serial,
                vendor=vendor,
                reason=refused.reason.value,
                detail=refused.detail,
            )
        else:
            row = Refusal(time.time(), kid, serial, vendor, refused.reason.value, refused.detail)
            self.registry.recent_refusals.append(row)
        if enrollment and serial is not None and refused.reason in _ADMISSION_REASONS:
            self.registry.set_state(serial, REFUSED, only_from=(IMPORTED,))
        if self.metrics is not None:
            self.metrics.refusal(refused.reason.value, vendor or UNKNOWN)
        self.publish_registry()
        if row is not None and self.refusal_log is not None and not self.refusal_log.submit(row):
            return  # a flood: counted and summarised, not logged line by line
        self.log.warning(
            "enrollment.refused",
            reason=refused.reason.value,
            detail=refused.detail,
            kid=None if kid is None else kid.hex(),
            serial=serial,
            vendor=vendor,
        )

    def refuse_handshake(self, kid: bytes) -> None:
        """The EDHOC layer met a kid without device record or backend credential."""
        self.record_refusal(
            Refused(RefusalReason.UNKNOWN_DEVICE, f"EDHOC initiator with unknown kid {kid.hex()}"),
            kid,
        )

    def publish_registry(self) -> None:
        if self.metrics is not None:
            self.metrics.registry_summary(
                self.registry.state_counts,
                self.registry.revoked_count,
                self.registry.group_generation,
            )
