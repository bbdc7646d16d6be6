"""The running trust center: material and registry loaded, EDHOC responder serving the API.

Start order: trust anchors (a ConfigError stops the node: exit 2), device records (an unusable
record is logged and skipped: one bad file must not take the domain down, and its thing then
shows up as an unknown-device refusal), registry (a StateError: exit 1), then the CoAP server.

Control actions (JSON in and out, run one at a time by the node's control endpoint):

    import-device  {voucher, idevid, ccs: base64; serial: optional check; name: optional, the
                   name the owner knows the thing by, bound to its serial (naming)}
                   store a device record on the state volume (idempotent: the same record
                   again changes nothing; a different one for the same serial replaces it).
                   A revoked thing stays revoked: a different record for it is refused (any
                   voucher bytes, a returned chain too), the same record again changes nothing.
    revoke         {serial, reason: RFC 5280 reason name, default cessationOfOperation}
                   the thing becomes revoked, its live certificates go on the CRL (next number),
                   it leaves /things (backends drop its context) and every later enrollment
                   or /cfg/oscore of it is refused "revoked"; again: changed false
    devices        {} every thing in the registry with its state and credentials' serials
    status         {} the trust center's state (counts, CRL, refusals)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from testbed.node.coap.credentials import Credential
from testbed.node.coap.edhoc_server import EdhocServer, start_edhoc_server
from testbed.node.errors import ActionError, StateError
from testbed.node.logs import EventLog
from testbed.node.material import COAP_PORT, DEVICES_DIR
from testbed.node.trust_center import devices as dev
from testbed.node.trust_center import naming
from testbed.node.trust_center.admission import AdmissionPolicy
from testbed.node.trust_center.bootstraps import BootstrapReport, BootstrapTracker
from testbed.node.trust_center.defences import DefenceCollector, Defences
from testbed.node.trust_center.dtls_server import COAPS_PORT, DtlsTrustCenter, import_psk
from testbed.node.trust_center.enrollment import Enrollment
from testbed.node.trust_center.finality import refuse_reinstatement
from testbed.node.trust_center.metrics import TrustCenterMetrics
from testbed.node.trust_center.refusal_log import RefusalLog
from testbed.node.trust_center.registry import REVOKED, BootstrapRow, Registry
from testbed.node.trust_center.resources import build_site
from testbed.node.trust_center.revocation import CrlPublisher, parse_reason
from testbed.node.trust_center.scope import BackendScope
from testbed.node.trust_center.trust import TrustAnchors, load_trust

DEFAULT_REVOCATION_REASON = "cessationOfOperation"


class TrustCenter:
    def __init__(
        self,
        *,
        material_root: Path,
        state_dir: Path,
        domain: str,
        trusted_vendors: list[str] | None,
        log: EventLog,
        metrics: TrustCenterMetrics | None = None,
        bind: tuple[str, int] = ("::", COAP_PORT),
        on_fatal: Callable[[BaseException], None] | None = None,
        backend_scope: BackendScope | None = None,
        coaps_bind: tuple[str, int] | None = ("::", COAPS_PORT),
        defences: Defences | None = None,
    ) -> None:
        self.backend_scope = backend_scope
        # The dtls-cert / dtls-psk server (trust_center.profiles); None: EDHOC only.
        self.coaps_bind = coaps_bind
        self._dtls: DtlsTrustCenter | None = None
        self.defences = defences or Defences()
        self._refusal_log: RefusalLog | None = None
        self.material_root = Path(material_root)
        self.state_dir = Path(state_dir)
        self.domain = domain
        self.trusted_vendors = trusted_vendors
        self.log = log
        self.metrics = metrics
        self.bind = bind
        self.on_fatal = on_fatal
        self.devices = dev.DeviceBook()
        self.unusable_records: dict[str, str] = {}
        self._trust: TrustAnchors | None = None
        self._registry: Registry | None = None
        self._enrollment: Enrollment | None = None
        self._crl: CrlPublisher | None = None
        self._server: EdhocServer | None = None
        self.tracker = BootstrapTracker(self._bootstrap_done)
        self.dtls_tracker = DtlsTrustCenter.make_tracker(self._dtls_bootstrap_done)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        trust = self._trust = load_trust(self.material_root, self.domain, self.trusted_vendors)
        self._load_records(trust)
        try:
            registry = self._registry = Registry.open(self.state_dir)
            registry.ensure_imported((r.serial, r.vendor, r.model, r.kid) for r in self.devices)
            self._bind_names(registry)
        except sqlite3.Error as exc:
            raise StateError(
                f"registry {self.state_dir} unusable: {exc}",
                "check the trust center's volume; the registry is never reset automatically",
            ) from exc
        crl = self._crl = CrlPublisher(trust.ca, registry)
        policy = AdmissionPolicy(trust, self.devices)
        enrollment = self._enrollment = Enrollment(
            policy, registry, crl, self.log, self.metrics, self.backend_scope
        )
        # Refusal rows off the event loop, bounded (refusal_log); defences before EDHOC state.
        enrollment.refusal_log = self._refusal_log = RefusalLog(
            registry.path, on_error=self.on_fatal
        )
        self._refusal_log.start()
        gate = self.defences.gate()
        site = build_site(
            enrollment,
            self.tracker,
            ca_certificate=trust.ca.cert.public_bytes(Encoding.DER),
            crl=lambda: crl.current().der,
            on_fatal=self.on_fatal,
        )
        self._server = await start_edhoc_server(
            site,
            trust.identity,
            self.lookup,
            bind=self.bind,
            sink=self.tracker,
            gate=gate,
            max_pending_per_source=self.defences.max_pending_per_source,
        )
        if self.metrics is not None:
            server = self._server
            self.metrics.watch_sessions(lambda: len(server.sessions))
            self.metrics.watch_defences(
                DefenceCollector(self.defences, gate, server.sessions, self._refusal_log)
            )
        if self.coaps_bind is not None:
            self._dtls = await DtlsTrustCenter.serve(
                self.coaps_bind,
                trust=trust,
                devices=self.devices,
                enrollment=enrollment,
                site=build_site(
                    enrollment,
                    self.dtls_tracker,
                    ca_certificate=trust.ca.cert.public_bytes(Encoding.DER),
                    crl=lambda: crl.current().der,
                    on_fatal=self.on_fatal,
                ),
                tracker=self.dtls_tracker,
                psk_roots=(self.state_dir, self.material_root),
                log=self.log,
                on_fatal=self.on_fatal,
            )
        enrollment.publish_registry()
        self.log.info(
            "trust_center.serving",
            port=self._server.port,
            coaps_port=None if self._dtls is None else self._dtls.port,
            domain=self.domain,
            trusted_vendors=sorted(trust.vendor_cas),
            device_records=len(self.devices),
            unusable_records=len(self.unusable_records),
            backends=sorted(name for name, _ in trust.backends.values()),
            things=dict(registry.state_counts),
        )

    async def stop(self) -> None:
        if self._dtls is not None:
            await self._dtls.close()
            self._dtls = None
        if self._server is not None:
            await self._server.close()
            self._server = None
        if self._refusal_log is not None:
            await self._refusal_log.close()  # its queued rows, before the registry closes
            self._refusal_log = None
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("trust center not started")
        return self._server.port

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            raise RuntimeError("trust center not started")
        return self._registry

    def _bind_names(self, registry: Registry) -> None:
        for record in self.devices:
            if record.name is not None:
                try:
                    naming.bind(registry, record.serial, record.name)
                except naming.NameTaken as exc:
                    self.log.error("device_record.name_taken", serial=record.serial, error=str(exc))

    def _load_records(self, trust: TrustAnchors) -> None:
        # State volume last: a record imported at run time replaces the minted one.
        for directory in (self.material_root / DEVICES_DIR, self.state_dir / DEVICES_DIR):
            for path, found in dev.scan(directory):
                try:
                    if isinstance(found, dev.RecordError):
                        raise found
                    self.devices.put(found, frozenset(trust.backends))
                except dev.RecordError as exc:
                    self.unusable_records[path.name] = str(exc)
                    self.log.error("device_record.unusable", path=str(path), error=str(exc))

    # -- EDHOC peer lookup ---------------------------------------------------------------

    def lookup(self, kid: bytes) -> Credential | None:
        """PeerLookup: device records and backends are admitted to the handshake; policy
        decisions about devices come later, per request, so that they are recorded."""
        record = self.devices.by_kid(kid)
        if record is not None:
            return record.credential
        if self._trust is not None and kid in self._trust.backends:
            return self._trust.backends[kid][1]
        if self._enrollment is not None:
            try:
                self._enrollment.refuse_handshake(kid)
            except sqlite3.Error as exc:
                if self.on_fatal is not None:
                    self.on_fatal(exc)
        return None

    # -- bootstrap accounting ------------------------------------------------------------

    def _bootstrap_done(self, report: BootstrapReport) -> None:
        # Called from the socket's send path: store after the datagram is out, not inside it.
        asyncio.get_running_loop().call_soon(self._store_bootstrap, report)

    def _dtls_bootstrap_done(self, report: BootstrapReport) -> None:
        profile = "dtls-cert" if self._dtls is None else self._dtls.profile_of(report.peer)
        asyncio.get_running_loop().call_soon(self._store_bootstrap, report, profile)

    def _store_bootstrap(self, report: BootstrapReport, profile: str = "edhoc-oscore") -> None:
        if self._registry is None:
            return
        received, datagrams_in = report.total("received")
        sent, datagrams_out = report.total("sent")
        answer = report.answer
        try:
            self._registry.record_bootstrap(
                BootstrapRow(
                    thing=answer.thing,
                    kid=answer.kid,
                    resource=answer.resource,
                    started_at=report.started_at,
                    duration_s=report.duration_s if report.edhoc else None,
                    bytes_in=received,
                    bytes_out=sent,
                    datagrams_in=datagrams_in,
                    datagrams_out=datagrams_out,
                    retransmissions=report.retransmissions,
                    messages=[
                        {
                            "message": m.message,
                            "direction": m.direction,
                            "bytes": m.bytes,
                            "datagrams": m.datagrams,
                            "retransmissions": m.retransmissions,
                            "message_bytes": m.message_bytes,
                        }
                        for m in report.messages
                    ],
                    outcome=answer.outcome,
                    reason=answer.reason,
                )
            )
        except sqlite3.Error as exc:
            self.log.error("bootstrap.record_failed", error=str(exc))
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        if self.metrics is not None and report.edhoc:
            self.metrics.bootstrap(
                answer.vendor, answer.model, report.duration_s, received, sent, profile
            )

    # -- control actions -----------------------------------------------------------------

    async def import_device(self, params: dict[str, Any]) -> dict[str, Any]:
        trust, registry = self._require_started()
        voucher, idevid, ccs = (_b64(params, name) for name in ("voucher", "idevid", "ccs"))
        serial, name = params.get("serial"), params.get("name")
        if serial is not None and not isinstance(serial, str):
            raise ActionError("'serial' must be a string")
        if name is not None and not isinstance(name, str):
            raise ActionError("'name' must be a string", "the thing's planned name, e.g. lamp-01")
        try:
            if name is None and serial is not None:  # a re-import keeps the bound name
                name = getattr(self.devices.by_serial(serial), "name", None)
            record = dev.parse_record(voucher, idevid, ccs, serial=serial, name=name)
            changed = self.devices.check(record, frozenset(trust.backends))
            refuse_reinstatement(registry.thing(record.serial), changed)
            if name is not None and naming.holder(registry, name) not in (None, record.serial):
                raise dev.RecordError(f"name {name!r} is bound to {naming.holder(registry, name)}")
            if changed:
                dev.store(self.state_dir / DEVICES_DIR, record)
                self.devices.put(record, frozenset(trust.backends))
        except dev.RecordError as exc:
            raise ActionError(f"device record refused: {exc}", "send the owner's files") from exc
        if params.get("psk") is not None:  # the dtls-psk factory key, sold with the voucher
            try:
                changed = import_psk(self.state_dir, record.serial, _b64(params, "psk")) or changed
            except ValueError as exc:
                raise ActionError(f"psk refused: {exc}", "send the 16-byte key as base64") from exc
        self.unusable_records.pop(record.serial, None)
        registry.ensure_imported([(record.serial, record.vendor, record.model, record.kid)])
        if record.name is not None:
            naming.bind(registry, record.serial, record.name)
        reinstated = False  # revocation is final for this owner (refuse_reinstatement)
        self._publish()
        thing = registry.thing(record.serial)
        self.log.info(
            "device.imported",
            serial=record.serial,
            kid=record.kid.hex(),
            changed=changed,
            reinstated=bool(reinstated),
            voucher_links=len(record.voucher),
        )
        return {
            "serial": record.serial,
            "vendor": record.vendor,
            "model": record.model,
            "kid": record.kid.hex(),
            "changed": changed,
            "reinstated": bool(reinstated),
            "voucher_links": len(record.voucher),
            "state": None if thing is None else thing.state,
        }

    async def revoke(self, params: dict[str, Any]) -> dict[str, Any]:
        _, registry = self._require_started()
        serial = params.get("serial")
        if not isinstance(serial, str) or not serial:
            raise ActionError("missing parameter 'serial'", 'send {"serial": "<device serial>"}')
        reason_name = params.get("reason") or DEFAULT_REVOCATION_REASON
        try:
            reason = parse_reason(str(reason_name))
        except ValueError as exc:
            raise ActionError(str(exc)) from exc
        result = registry.revoke(serial, reason.value)
        if result is None:
            raise ActionError(f"no thing with serial {serial!r} in the registry")
        previous, certificates = result
        assert self._crl is not None
        if certificates:
            self._crl.invalidate()
        crl = self._crl.current()
        self._publish()
        group_generation = registry.group_generation
        self.log.info(
            "thing.revoked",
            serial=serial,
            reason=reason.value,
            certificates=list(certificates),
            crl_number=crl.number,
            group_key_generation=group_generation,
        )
        return {
            "serial": serial,
            "changed": previous != REVOKED or bool(certificates),
            "previous_state": previous,
            "state": "revoked",
            "reason": reason.value,
            "revoked_certificates": list(certificates),
            "crl_number": crl.number,
            "group_key_generation": group_generation,
            "crl_entries": crl.entries,
        }

    def devices_list(self) -> list[dict[str, Any]]:
        """Every thing the registry knows, with what the operator needs to see about it."""
        _, registry = self._require_started()
        out = []
        for thing in registry.things():
            record = self.devices.by_serial(thing.serial)
            out.append(
                {
                    "serial": thing.serial,
                    "name": thing.name,
                    "vendor": thing.vendor,
                    "model": thing.model,
                    "device_class": thing.device_class,
                    "state": thing.state,
                    "address": thing.address,
                    "ldevid_serial": thing.ldevid_serial,
                    "generation": thing.oscore_generation,
                    "enrollments": thing.enrollments,
                    "kid": thing.kid.hex(),
                    "record": record is not None,
                    "voucher_links": None if record is None else len(record.voucher),
                }
            )
        return out

    def _require_started(self) -> tuple[TrustAnchors, Registry]:
        if self._trust is None or self._registry is None:
            raise ActionError("the trust center is not running", "wait until the node is ready")
        return self._trust, self._registry

    def _publish(self) -> None:
        if self._enrollment is not None:
            self._enrollment.publish_registry()

    # -- observation ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        if self._registry is None:
            return {"serving": False}
        registry = self._registry
        return {
            "serving": self._server is not None,
            "coap_port": None if self._server is None else self._server.port,
            "coaps_port": None if self._dtls is None else self._dtls.port,
            "dtls_sessions": 0 if self._dtls is None else self._dtls.sessions,
            "things": dict(registry.state_counts),
            "certificates_issued": registry.certificates_count,
            "crl_entries": registry.revoked_count,
            "group_key_generation": registry.group_generation,
            "device_records": len(self.devices),
            "unusable_records": dict(self.unusable_records),
            "edhoc_sessions": 0 if self._server is None else len(self._server.sessions),
            "last_refusals": [r.to_dict() for r in reversed(registry.recent_refusals)],
        }


def _b64(params: dict[str, Any], name: str) -> bytes:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ActionError(f"missing parameter {name!r}", f"send {name} as base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ActionError(f"parameter {name!r} is not base64") from exc
