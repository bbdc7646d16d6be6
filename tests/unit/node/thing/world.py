"""A minted building for thing and backend tests: real PKI, real trust center, all on ::1.

Material is minted with testbed.pki and laid out per node exactly as testbed.node.material
names it (what ``testbed.manufacture`` writes into each node's /etc/testbed). Roles are the real
ones, constructed in-process with a ``material_root`` and loopback ports.

The building has one operator domain (``DOMAIN``) unless a test adds more with ``operator``
(each with its own owner key, domain CA and trust center: ownership transfer), and a vendor
cloud serving ``FIRMWARE_VERSIONS`` of the things' model (``vendor_cloud``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry

from testbed import pki
from testbed.contracts.node_config import Interface, NodeConfig
from testbed.node import material as M
from testbed.node.backend.directory import ThingEntry, TrustCenterDirectory
from testbed.node.backend.peers import Reply, protected_request
from testbed.node.backend.probes import Capture
from testbed.node.coap.transport import create_context
from testbed.node.logs import EventLog
from testbed.node.roles.base import RoleContext
from testbed.node.roles.internet_host import InternetHostRole
from testbed.node.thing.contexts import PersistentContext, write_context
from testbed.node.thing.role import ThingRole
from testbed.node.trust_center.role import TrustCenterRole
from testbed.pki import firmware, keys

DOMAIN = "hvac"
BACKEND = "backend-1"
MODEL = "t-1000"
FACTORY_FIRMWARE = "1.0.0"
FIRMWARE_VERSIONS = ["1.0.0", "1.1.0", "2.0.0"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("::1", port))
        except OSError:
            return False
    return True


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def context(
    node: str,
    role: str,
    state_dir: Path,
    attributes: dict[str, str],
    failures: list[Any],
    material: Path,
) -> RoleContext:
    config = NodeConfig(
        run="unit",
        building="lab",
        node=node,
        role=role,
        interfaces=(Interface("mgmt", "::1/128"),),
        attributes=attributes,
    )
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = EventLog(logging.getLogger(f"test.{node}"))
    return RoleContext(config, state_dir, log, failures.append, material_root=material)


@dataclass
class MintedThing:
    name: str
    device: pki.DeviceIdentity
    voucher: pki.Voucher
    device_class: str
    material: Path  # its /etc/testbed
    state: Path  # its volume

    @property
    def serial(self) -> str:
        return self.device.serial

    def record_params(self, voucher: pki.Voucher | None = None) -> dict[str, str]:
        """import-device parameters for this thing (with ``voucher`` instead of its own)."""
        return {
            "serial": self.serial,
            "voucher": b64((voucher or self.voucher).to_bytes()),
            "idevid": b64(der(self.device.idevid)),
            "ccs": b64(self.device.ccs.to_bytes()),
        }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Operator:
    """An operator domain: owner key and domain CA, and its trust center's identity and port."""

    name: str
    domain: pki.Domain
    tc_key: keys.PrivateKey
    tc_ccs: pki.Ccs
    tc_port: int

    @property
    def tc_uri(self) -> str:
        return f"coap://[::1]:{self.tc_port}"

    @property
    def node(self) -> str:
        return "tc-1" if self.name == DOMAIN else f"tc-{self.name}"

    def transfer_params(self) -> dict[str, str]:
        """What a thing's ``transfer`` action needs to know about this owner."""
        return {
            "trust_center_uri": self.tc_uri,
            "trust_center_ccs": b64(self.tc_ccs.to_bytes()),
            "domain": self.name,
        }


@dataclass
class World:
    tmp: Path
    vendor: pki.Vendor = field(default_factory=lambda: pki.new_vendor("acme"))
    domain: pki.Domain = field(default_factory=lambda: pki.new_domain(DOMAIN))
    tc_key: keys.PrivateKey = field(default_factory=keys.generate)
    backend_key: keys.PrivateKey = field(default_factory=keys.generate)
    things: dict[str, MintedThing] = field(default_factory=dict)
    failures: list[Any] = field(default_factory=list)  # fatal() calls of every role

    def __post_init__(self) -> None:
        self.tc_ccs = pki.Ccs(
            f"urn:testbed:tc:{DOMAIN}", pki.compact_kid(0), self.tc_key.public_key()
        )
        self.backend_ccs = pki.Ccs(
            f"urn:testbed:host:{BACKEND}", pki.compact_kid(40), self.backend_key.public_key()
        )
        self.tc_port = free_udp_port()
        self.cloud_port = free_udp_port()
        self.operators = {
            DOMAIN: Operator(DOMAIN, self.domain, self.tc_key, self.tc_ccs, self.tc_port)
        }

    @property
    def tc_uri(self) -> str:
        return f"coap://[::1]:{self.tc_port}"

    @property
    def cloud_uri(self) -> str:
        return f"coap://[::1]:{self.cloud_port}"

    def operator(self, name: str = DOMAIN) -> Operator:
        """The operator ``name``, created (new owner key, CA, trust center) on first use."""
        if name not in self.operators:
            key = keys.generate()
            ccs = pki.Ccs(f"urn:testbed:tc:{name}", pki.compact_kid(0), key.public_key())
            self.operators[name] = Operator(name, pki.new_domain(name), key, ccs, free_udp_port())
        return self.operators[name]

    # -- minting ----------------------------------------------------------------------------

    def make_thing(
        self,
        name: str,
        device_class: str = "thermostat",
        *,
        foreign_owner: bool = False,
        imported: bool = True,
    ) -> MintedThing:
        index = len(self.things) + 1
        device = pki.manufacture(
            self.vendor, f"ACME-{index:04d}", MODEL, kid=pki.compact_kid(index)
        )
        owner = pki.new_domain("elsewhere").owner_public_key if foreign_owner else None
        voucher = pki.issue_voucher(self.vendor, device, owner or self.domain.owner_public_key)
        material = self.tmp / "nodes" / name
        files = {f"{M.IDENTITY}/{n}": b for n, b in pki.device_files(device).items()}
        files[M.THING_VENDOR_CA] = der(self.vendor.ca_cert)
        files[M.TRUST_CENTER_CCS] = self.tc_ccs.to_bytes()
        pki.write_files(material, files)
        thing = MintedThing(
            name, device, voucher, device_class, material, self.tmp / "volumes" / name
        )
        if imported:
            self.things[name] = thing
        return thing

    def write_tc_material(self, name: str = DOMAIN) -> Path:
        """A trust center's material; the things' records only in the first domain's (the
        others learn of things by import-device)."""
        op = self.operator(name)
        root = self.tmp / "nodes" / op.node
        files = {f"tc/{n}": b for n, b in pki.identity_files(op.tc_key, op.tc_ccs, "tc").items()}
        files[M.DOMAIN_CA_KEY] = keys.private_pem(op.domain.ca.key)
        files[M.DOMAIN_CA_CERT] = der(op.domain.ca_cert)
        files[M.OWNER_PUB] = keys.public_pem(op.domain.owner_public_key)
        files[f"{M.VENDORS_DIR}/{self.vendor.name}/{M.VENDOR_CA_CERT}"] = der(self.vendor.ca_cert)
        for thing in self.things.values() if name == DOMAIN else ():
            record = f"{M.DEVICES_DIR}/{thing.serial}"
            files[f"{record}/{M.VOUCHER}"] = thing.voucher.to_bytes()
            files[f"{record}/{M.DEVICE_RECORD_IDEVID}"] = der(thing.device.idevid)
            files[f"{record}/{M.DEVICE_RECORD_CCS}"] = thing.device.ccs.to_bytes()
        files[f"{M.BACKENDS_DIR}/{BACKEND}.ccs.cbor"] = self.backend_ccs.to_bytes()
        pki.write_files(root, files)
        return root

    def write_backend_material(self) -> Path:
        root = self.tmp / "nodes" / BACKEND
        files = {
            f"{M.IDENTITY}/{n}": b
            for n, b in pki.identity_files(self.backend_key, self.backend_ccs, "host").items()
        }
        for op in self.operators.values():
            files[f"{M.TRUST_CENTERS_DIR}/{op.name}.ccs.cbor"] = op.tc_ccs.to_bytes()
        pki.write_files(root, files)
        return root

    def write_cloud_material(self) -> Path:
        """The vendor cloud's releases: FIRMWARE_VERSIONS of MODEL and their broken variants."""
        root = self.tmp / "nodes" / "cloud-1"
        if not root.exists():
            files: dict[str, bytes] = {}
            for release in firmware.mint_releases(self.vendor, MODEL, FIRMWARE_VERSIONS):
                image, manifest = M.firmware_files(self.vendor.name, MODEL, release.name)
                files[image], files[manifest] = release.image, release.manifest
            pki.write_files(root, files)
        return root

    # -- roles ------------------------------------------------------------------------------

    def thing_role(
        self, thing: MintedThing, registry: CollectorRegistry | None = None, /, **attributes: str
    ) -> ThingRole:
        attrs = {
            "vendor": self.vendor.name,
            "model": MODEL,
            "device-class": thing.device_class,
            "domain": DOMAIN,
            "profile": "edhoc-oscore",
            "serial": thing.serial,
            "firmware": FACTORY_FIRMWARE,
            "vendor-cloud-uri": self.cloud_uri,
            "trust-center-uri": self.tc_uri,
            "coap-bind": "::1",
            "coap-port": str(free_udp_port()),
            "bootstrap-timeout": "10",
            "bootstrap-retry-initial": "0.2",
            "bootstrap-retry-max": "1",
            **attributes,
        }
        ctx = context(thing.name, "thing", thing.state, attrs, self.failures, thing.material)
        role = ThingRole(ctx)
        role.register_metrics(registry or CollectorRegistry())
        return role

    @asynccontextmanager
    async def trust_center(self, name: str = DOMAIN) -> AsyncIterator[TrustCenterRole]:
        op = self.operator(name)
        material = self.write_tc_material(name)
        ctx = context(
            op.node,
            "trust_center",
            self.tmp / "volumes" / op.node,
            {"domain": name, "trusted-vendors": self.vendor.name},
            self.failures,
            material,
        )
        role = TrustCenterRole(ctx, bind=("::1", op.tc_port))
        role.register_metrics(CollectorRegistry())
        await role.start()
        try:
            yield role
        finally:
            await role.stop()

    @asynccontextmanager
    async def vendor_cloud(
        self, registry: CollectorRegistry | None = None
    ) -> AsyncIterator[InternetHostRole]:
        attrs = {
            "kind": "vendor-cloud",
            "coap-bind": "::1",
            "coap-port": str(self.cloud_port),
        }
        volume, material = self.tmp / "volumes" / "cloud-1", self.write_cloud_material()
        ctx = context("cloud-1", "internet_host", volume, attrs, self.failures, material)
        role = InternetHostRole(ctx)
        role.register_metrics(registry or CollectorRegistry())
        await role.start()
        try:
            yield role
        finally:
            await role.stop()

    def backend_role(
        self,
        registry: CollectorRegistry | None = None,
        /,
        domains: tuple[str, ...] = (DOMAIN,),
        **attributes: str,
    ) -> InternetHostRole:
        trust_centers = ",".join(f"{d}={self.operator(d).tc_uri}" for d in domains)
        attrs = {
            "kind": "backend",
            "trust-centers": trust_centers,
            "poll-interval": "0.2",
            "read-interval": "0.3",
            "request-timeout": "5",
            **attributes,
        }
        volume, material = self.tmp / "volumes" / BACKEND, self.write_backend_material()
        ctx = context(BACKEND, "internet_host", volume, attrs, self.failures, material)
        role = InternetHostRole(ctx)
        role.register_metrics(registry or CollectorRegistry())
        return role


async def eventually(
    check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; its last value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class Client:
    """The backend's side of a thing's context, as a test drives it: real aiocoap, a tap."""

    def __init__(self, entry: ThingEntry, directory: Path, port: int) -> None:
        self.entry = entry
        self.context = PersistentContext(write_context(directory, entry.grant))
        self.uri = f"coap://[::1]:{port}"
        self.capture = Capture()
        self.coap: aiocoap.Context | None = None

    async def __aenter__(self) -> Client:
        self.coap = await create_context(sink=self.capture)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.coap is not None
        await self.coap.shutdown()
        self.context.close()

    async def request(
        self, code: aiocoap.numbers.Code, resource: str, payload: bytes = b"", **options: Any
    ) -> Reply:
        assert self.coap is not None
        uri = f"{self.uri}/{resource}"
        return await protected_request(self.coap, self.context, uri, code, payload, 5.0, **options)

    async def plain(self, code: aiocoap.numbers.Code, resource: str) -> aiocoap.Message:
        assert self.coap is not None
        message = aiocoap.Message(code=code, uri=f"{self.uri}/{resource}")
        return await asyncio.wait_for(self.coap.request(message).response, 5.0)

    def sent_requests(self) -> list[bytes]:
        """Protected request datagrams this client put on the wire, in order."""
        out = []
        for direction, _, data in self.capture.datagrams:
            message = aiocoap.Message.decode(data)
            if direction == "sent" and message.code.is_request() and message.opt.oscore is not None:
                out.append(data)
        return out


async def listing(world: World, domain: str = DOMAIN) -> dict[str, ThingEntry]:
    """The trust center's /things, fetched the way the backend does (EDHOC with the host key)."""
    directory = await TrustCenterDirectory.connect(
        domain, world.operator(domain).tc_uri, world.write_backend_material()
    )
    try:
        return {t.name: t for t in await directory.things()}
    finally:
        await directory.close()


def by_name(backend: Any) -> dict[str, Any]:
    """The backend's peers by the name their trust center lists (peers are keyed by
    (domain, serial); names are unique in these worlds)."""
    return {peer.entry.name: peer for peer in backend.peers.values()}
