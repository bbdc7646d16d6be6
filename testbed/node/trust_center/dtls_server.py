"""The trust center's CoAPS server: the ``dtls-cert`` and ``dtls-psk`` bootstrap profiles.

One DTLS 1.2 endpoint (default port 5684, RFC 7252 "coaps") offers both RFC 7925 suites:
ECDHE-ECDSA with certificates and PSK, both AES-128-CCM-8. The client's offer picks one.

Who the peer is, is decided when its handshake completes, and mapped to the device record's
credential, so that the enrollment resources and the admission policy serve DTLS exactly as
they serve EDHOC (same checks, same refusal reasons, same registry rows):

- certificate: the server asks for a client certificate but does not require it to chain
  (Mbed TLS "optional" verification: the CertificateVerify signature, i.e. possession of the
  certified key, is still checked). The chain, the vendor, the voucher and revocation are the
  admission policy's, as with EDHOC, which is why a rogue IDevID gets ``idevid-invalid`` and
  not an anonymous handshake failure. The record is the one whose device key the certificate
  certifies ("key match").
- PSK: the identity is the kid; the key is the one imported with the thing's voucher
  (``devices/<serial>/device.psk``). An unknown identity fails the handshake
  (unknown_psk_identity) and is recorded as an unknown-device refusal.

A session whose peer has no device record is closed right after the handshake (close_notify)
and recorded as an unknown-device refusal, like an EDHOC initiator with an unknown kid.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from mbedtls import tls

from testbed.node import material as M
from testbed.node.bootstrap.accounting import Peer
from testbed.node.coap.credentials import Credential
from testbed.node.dtls import credentials as creds
from testbed.node.dtls.classify import DtlsClassifier
from testbed.node.dtls.coaps import CoapsSite
from testbed.node.dtls.endpoint import DEFAULT_MTU, DtlsServer, ServerSession
from testbed.node.enrollment_api import RefusalReason
from testbed.node.logs import EventLog
from testbed.node.material import DEVICES_DIR
from testbed.node.trust_center.admission import Refused
from testbed.node.trust_center.bootstraps import BootstrapReport, BootstrapTracker
from testbed.node.trust_center.devices import DeviceBook, DeviceRecord
from testbed.node.trust_center.enrollment import Enrollment
from testbed.node.trust_center.trust import TrustAnchors
from testbed.pki import keys

COAPS_PORT = 5684
PROFILES_REMEMBERED = 4096
DEVICE_PSK = M.DEVICE_RECORD_PSK  # devices/<serial>/device.psk beside the voucher


class PskBook(Mapping[str, bytes]):
    """PSK identity (kid hex) -> key, read from the device records' directories on demand
    (state volume first: a key imported at run time replaces the minted one)."""

    def __init__(self, devices: DeviceBook, roots: tuple[Path, ...]) -> None:
        self.devices = devices
        self.roots = roots
        self.on_lookup: Callable[[str, bool], None] | None = None

    def record(self, identity: str) -> DeviceRecord | None:
        try:
            kid = bytes.fromhex(identity)
        except ValueError:
            return None
        return self.devices.by_kid(kid)

    def key(self, record: DeviceRecord) -> bytes | None:
        for root in self.roots:
            path = root / DEVICES_DIR / record.serial / DEVICE_PSK
            if path.exists():
                return creds.read_psk(path)
        return None

    def __getitem__(self, identity: str) -> bytes:
        record = self.record(identity)
        psk = None if record is None else self.key(record)
        if self.on_lookup is not None:
            self.on_lookup(identity, psk is not None)
        if psk is None:
            raise KeyError(identity)
        return psk

    def __iter__(self) -> Iterator[str]:
        return iter(())  # lookups only: Mbed TLS asks for one identity at a time

    def __len__(self) -> int:
        return len(self.devices)


def import_psk(state_dir: Path, serial: str, psk: bytes) -> bool:
    """Store a thing's PSK with its record on the state volume; True if it changed."""
    path = state_dir / DEVICES_DIR / serial / DEVICE_PSK
    if path.exists() and path.read_bytes() == psk:
        return False
    creds.write_psk(path, psk)
    return True


class DtlsTrustCenter:
    def __init__(
        self,
        *,
        trust: TrustAnchors,
        devices: DeviceBook,
        enrollment: Enrollment,
        site: Any,
        tracker: BootstrapTracker,
        psk_roots: tuple[Path, ...],
        log: EventLog,
        mtu: int = DEFAULT_MTU,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.trust = trust
        self.devices = devices
        self.enrollment = enrollment
        self.site = site
        self.tracker = tracker
        self.log = log
        self.mtu = mtu
        self.on_fatal = on_fatal
        self.psks = PskBook(devices, psk_roots)
        self.psks.on_lookup = self._psk_lookup
        self.server: DtlsServer | None = None
        self.coaps: CoapsSite | None = None
        # Which profile each peer's latest session was, for its bootstrap record (bounded).
        self._profiles: OrderedDict[Peer, str] = OrderedDict()

    @staticmethod
    def make_tracker(on_done: Callable[[BootstrapReport], None]) -> BootstrapTracker:
        """The cost tracker of the CoAPS socket: attempts open with a ClientHello."""
        return BootstrapTracker(
            on_done,
            classifier=DtlsClassifier(local_is_server=True),
            start_message="dtls_client_hello",
        )

    @classmethod
    async def serve(cls, bind: tuple[str, int], **kw: Any) -> DtlsTrustCenter:
        server = cls(**kw)
        await server.start(bind)
        return server

    @property
    def sessions(self) -> int:
        return 0 if self.server is None else len(self.server.sessions)

    def configuration(self) -> tls.DTLSConfiguration:
        identity = self.trust.identity
        certificate = creds.issue_server_certificate(self.trust.ca, identity.private_key)
        anchors = tls.TrustStore()
        for vendor in self.trust.vendor_cas.values():
            anchors.add(creds.crt(vendor.cert))
        return tls.DTLSConfiguration(
            # False on a server is Mbed TLS's "optional": a certificate is requested and its
            # key must sign the CertificateVerify; the chain is the admission policy's.
            validate_certificates=False,
            certificate_chain=((creds.crt(certificate),), creds.ecc(identity.private_key)),
            trust_store=anchors,
            ciphers=(creds.CIPHER_CERT, creds.CIPHER_PSK),
            lowest_supported_version=tls.DTLSVersion.DTLSv1_2,
            highest_supported_version=tls.DTLSVersion.DTLSv1_2,
            pre_shared_key_store=self.psks,
        )

    async def start(self, bind: tuple[str, int]) -> None:
        server = DtlsServer(
            self.configuration(),
            on_established=self._established,
            on_data=lambda session, data: self._data(session, data),
            mtu=self.mtu,
            sink=self.tracker,
        )
        await server.start(bind)
        self.server = server
        self.coaps = CoapsSite(server, self.site, (bind[0], server.port))

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    async def close(self) -> None:
        if self.coaps is not None:
            await self.coaps.close()
        if self.server is not None:
            await self.server.close()

    def profile_of(self, peer: Peer) -> str:
        return self._profiles.get(peer, "dtls-cert")

    # -- who is the peer ---------------------------------------------------------------

    def _psk_lookup(self, identity: str, found: bool) -> None:
        server = self.server
        if server is not None and server.current is not None:
            server.current.psk_identity = identity
        if not found:
            self._refuse(f"DTLS PSK identity {identity[:40]!r} unknown", _kid(identity))

    def _established(self, session: ServerSession) -> None:
        assert self.server is not None
        credential = self._peer(session)
        if credential is None:
            self.server.drop(session)
            return
        session.admitted = credential
        self._profiles[session.peer] = "dtls-psk" if session.psk_identity else "dtls-cert"
        while len(self._profiles) > PROFILES_REMEMBERED:
            self._profiles.popitem(last=False)
        self.log.info(
            "dtls.established",
            peer=f"[{session.peer[0]}]:{session.peer[1]}",
            kid=credential.kid.hex(),
            cipher=session.cipher,
        )

    def _peer(self, session: ServerSession) -> Credential | None:
        if session.psk_identity is not None:
            record = self.psks.record(session.psk_identity)
            return None if record is None else record.credential
        der = session.peer_certificate
        if der is None:
            self._refuse("DTLS client sent no certificate", None)
            return None
        try:
            public = x509.load_der_x509_certificate(der).public_key()
        except ValueError:
            self._refuse("DTLS client certificate does not parse", None)
            return None
        if isinstance(public, keys.PublicKey):
            for record in self.devices:
                if keys.same(record.ccs.public_key, public):
                    return record.credential
        kid = keys.fingerprint(public).encode() if isinstance(public, keys.PublicKey) else None
        self._refuse("DTLS client certificate for a key without device record", kid)
        return None

    def _refuse(self, detail: str, kid: bytes | None) -> None:
        try:
            self.enrollment.record_refusal(Refused(RefusalReason.UNKNOWN_DEVICE, detail), kid)
        except sqlite3.Error as exc:
            if self.on_fatal is not None:
                self.on_fatal(exc)

    def _data(self, session: ServerSession, data: bytes) -> None:
        if self.coaps is not None:
            self.coaps.on_data(session, data)


def _kid(identity: str) -> bytes | None:
    try:
        return bytes.fromhex(identity)
    except ValueError:
        return identity.encode()[:64]
