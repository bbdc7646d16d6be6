"""A minted PKI world for trust center tests: vendors, a domain, things, a backend.

The trust center's material directory is laid out exactly as ``testbed.manufacture`` lays it
out (``testbed.node.material`` names the paths), and things enroll with the real thing-side
profile (``EdhocOscoreProfile``) from files written the way a thing gets them.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
import cbor2
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry

from testbed import pki
from testbed.contracts.node_config import Interface, NodeConfig
from testbed.node import material as M
from testbed.node.bootstrap.dtls_coaps import DtlsProfile
from testbed.node.bootstrap.edhoc_oscore import EdhocOscoreProfile
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapResult,
    FactoryIdentity,
    TrustCenterRef,
)
from testbed.node.coap.credentials import Credential, EdhocIdentity
from testbed.node.coap.edhoc_client import EdhocOscoreClient
from testbed.node.dtls import credentials as dtls_credentials
from testbed.node.enrollment_api import EST_SIMPLE_ENROLL, K_DETAIL, K_REASON
from testbed.node.logs import EventLog
from testbed.node.roles.base import RoleContext
from testbed.node.trust_center.dtls_server import DEVICE_PSK
from testbed.node.trust_center.role import TrustCenterRole
from testbed.pki import keys

DOMAIN = "hvac"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def write(root: Path, files: dict[str, bytes]) -> None:
    """Plain 0600 files (no fsync: tests mint hundreds of them)."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(content)
        path.chmod(0o600)


def der(cert: Any) -> bytes:
    return bytes(cert.public_bytes(Encoding.DER))


@dataclass
class Thing:
    device: pki.DeviceIdentity
    voucher: pki.Voucher
    directory: Path  # the thing's own /etc/testbed/identity
    psk: bytes = field(default_factory=dtls_credentials.mint_psk)  # dtls-psk factory key

    @property
    def serial(self) -> str:
        return self.device.serial

    @property
    def kid(self) -> bytes:
        return self.device.kid

    def record_files(self) -> dict[str, bytes]:
        base = f"{M.DEVICES_DIR}/{self.serial}"
        return {
            f"{base}/{M.VOUCHER}": self.voucher.to_bytes(),
            f"{base}/{M.DEVICE_RECORD_IDEVID}": der(self.device.idevid),
            f"{base}/{M.DEVICE_RECORD_CCS}": self.device.ccs.to_bytes(),
            f"{base}/{DEVICE_PSK}": self.psk,
        }

    def identity(self) -> EdhocIdentity:
        return EdhocIdentity(self.device.key, Credential.from_cbor(self.device.ccs.to_bytes()))

    def csr(self, serial: str | None = None) -> bytes:
        if serial is None:
            return der_csr(pki.make_csr(self.device))
        other = pki.DeviceIdentity(
            self.device.vendor,
            self.device.model,
            serial,
            self.device.key,
            self.device.idevid,
            self.device.ccs,
        )
        return der_csr(pki.make_csr(other))


def der_csr(csr: Any) -> bytes:
    return bytes(csr.public_bytes(Encoding.DER))


@dataclass
class World:
    tmp: Path
    acme: pki.Vendor = field(default_factory=lambda: pki.new_vendor("acme"))
    globex: pki.Vendor = field(default_factory=lambda: pki.new_vendor("globex"))
    domain: pki.Domain = field(default_factory=lambda: pki.new_domain(DOMAIN))
    tc: EdhocIdentity = field(
        default_factory=lambda: EdhocIdentity.generate(b"\x00", f"urn:testbed:tc:{DOMAIN}")
    )
    backend_key: keys.PrivateKey = field(default_factory=keys.generate)
    things: list[Thing] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.material = self.tmp / "material"
        self.state = self.tmp / "state"
        self.state.mkdir(mode=0o700, exist_ok=True)
        self.tc_ccs = self.tmp / "tc.ccs.cbor"
        self.tc_ccs.write_bytes(self.tc.credential.encoded)
        self.backend_ccs = pki.Ccs(
            "urn:testbed:host:backend-1", b"\xbb\x01", self.backend_key.public_key()
        )

    @property
    def backend(self) -> EdhocIdentity:
        return EdhocIdentity(self.backend_key, Credential.from_cbor(self.backend_ccs.to_bytes()))

    def make_thing(
        self,
        serial: str,
        *,
        vendor: pki.Vendor | None = None,
        maker: pki.Vendor | None = None,
        owner: keys.PublicKey | None = None,
        model: str = "t-1000",
        imported: bool = True,
    ) -> Thing:
        """A manufactured thing; ``maker`` signs its IDevID (a counterfeiter when it is not
        ``vendor``), ``owner`` is whom the voucher names (default: this domain)."""
        vendor = vendor or self.acme
        device = pki.manufacture(maker or vendor, serial, model)
        voucher = pki.issue_voucher(vendor, device, owner or self.domain.owner_public_key)
        directory = self.tmp / "things" / serial
        files = pki.device_files(device)
        thing = Thing(device, voucher, directory)
        write(directory, {**files, M.DEVICE_PSK: thing.psk})
        if imported:
            self.things.append(thing)
        return thing

    def write_material(self, trusted: Iterable[pki.Vendor] | None = None) -> None:
        trusted = [self.acme] if trusted is None else list(trusted)
        files: dict[str, bytes] = {
            M.TC_KEY_PEM: keys.private_pem(self.tc.private_key),
            M.TC_KEY_COSE: cbor2.dumps(keys.cose_private_key(self.tc.private_key), canonical=True),
            M.TC_CCS: self.tc.credential.encoded,
            M.DOMAIN_CA_KEY: keys.private_pem(self.domain.ca.key),
            M.DOMAIN_CA_CERT: der(self.domain.ca_cert),
            M.OWNER_PUB: keys.public_pem(self.domain.owner_public_key),
            f"{M.BACKENDS_DIR}/backend-1.ccs.cbor": self.backend_ccs.to_bytes(),
        }
        for vendor in trusted:
            files[f"{M.VENDORS_DIR}/{vendor.name}/{M.VENDOR_CA_CERT}"] = der(vendor.ca_cert)
        for thing in self.things:
            files.update(thing.record_files())
        write(self.material, files)
        write(self.tmp, {M.TRUST_CENTER_CA: der(self.domain.ca_cert)})

    # -- the thing side ----------------------------------------------------------------

    async def bootstrap(
        self,
        thing: Thing,
        port: int,
        *,
        csr: bytes | None = None,
        path: str | None = None,
        timeout_s: float = 20,
        profile_name: str = "edhoc-oscore",
        coaps_port: int | None = None,
    ) -> BootstrapResult:
        """Enroll ``thing`` with the given profile (dtls-*: to ``coaps_port``)."""
        profile: EdhocOscoreProfile | DtlsProfile
        if profile_name == "edhoc-oscore":
            profile = EdhocOscoreProfile(path) if path else EdhocOscoreProfile()
        else:
            assert coaps_port is not None
            profile = DtlsProfile(
                profile_name.removeprefix("dtls-"), path or EST_SIMPLE_ENROLL, port=coaps_port
            )
        ctx = BootstrapContext(
            node=f"node-{thing.serial}",
            identity=FactoryIdentity(
                private_key=thing.directory / pki.store.DEVICE_KEY_PEM,
                idevid=thing.directory / pki.store.IDEVID_DER,
                ccs=thing.directory / pki.store.DEVICE_CCS,
                psk=thing.directory / M.DEVICE_PSK,
            ),
            trust_center=TrustCenterRef(
                uri=f"coap://[::1]:{port}",
                ccs=self.tc_ccs,
                ca_certificate=self.tmp / M.TRUST_CENTER_CA,
            ),
            csr_der=thing.csr() if csr is None else csr,
            timeout_s=timeout_s,
        )
        return await profile.bootstrap(ctx)

    async def request(
        self,
        identity: EdhocIdentity,
        port: int,
        code: aiocoap.numbers.Code,
        path: str,
        payload: bytes = b"",
        **options: Any,
    ) -> aiocoap.Message:
        """One OSCORE request after a fresh EDHOC with ``identity``."""
        client = await EdhocOscoreClient.connect(
            identity, self.tc.credential, f"coap://[::1]:{port}"
        )
        try:
            return await client.request(code, path, payload, **options)
        finally:
            await client.close()


def refusal(message: aiocoap.Message) -> tuple[str, str, str]:
    """(code, reason, detail) of a 4.03 answer."""
    body = cbor2.loads(message.payload)
    return message.code.dotted, body[K_REASON], body[K_DETAIL]


def role_context(
    state_dir: Path, *, trusted: str | None = "acme", failures: list[Any] | None = None
) -> RoleContext:
    attributes = {"domain": DOMAIN}
    if trusted is not None:
        attributes["trusted-vendors"] = trusted
    config = NodeConfig(
        run="unit",
        building="lab",
        node="tc-1",
        role="trust_center",
        interfaces=(Interface("mgmt", "::1/128"),),
        attributes=attributes,
    )
    log = EventLog(logging.getLogger("test.trust_center"))
    sink = failures if failures is not None else []
    return RoleContext(config, state_dir, log, sink.append)


@asynccontextmanager
async def running(
    world: World,
    *,
    trusted: str | None = "acme",
    port: int = 0,
    metrics: CollectorRegistry | None = None,
) -> AsyncIterator[TrustCenterRole]:
    role = TrustCenterRole(
        role_context(world.state, trusted=trusted),
        material_root=world.material,
        bind=("::1", port),
        coaps_port=0,
    )
    role.register_metrics(metrics or CollectorRegistry())
    await role.start()
    try:
        yield role
    finally:
        await role.stop()


def port_of(role: TrustCenterRole) -> int:
    assert role.service is not None
    return role.service.port


def coaps_port_of(role: TrustCenterRole) -> int:
    assert role.service is not None and role.service._dtls is not None
    return role.service._dtls.port
