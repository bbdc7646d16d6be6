"""Manufacture and sale, done on the host at `testbed up`: every credential a run needs.

From the plan alone (vendors, domains, things, hosts and their attributes) it mints
- per vendor a CA (signs IDevIDs and vouchers),
- per operator domain an owner key and a domain CA, and the trust center's EDHOC identity,
- per thing a device key, IDevID, CCS and an ownership voucher naming its domain's owner,
- per backend host an EDHOC identity known to every trust center,
- per vendor cloud host the firmware releases of every (vendor, model) the building has:
  the factory version, ``FIRMWARE_VERSIONS``, and the broken variants of
  ``testbed.pki.firmware`` (tampered, forged, other model), each manifest signed by the
  vendor CA key; every thing gets its vendor's CA certificate to verify them,
and lays each node's share into its run directory (testbed.node.material names the paths).
Keys of CAs and owners stay in ``RUN/pki`` on the host; nodes get only what their role needs.

Faults for security experiments (topology ``faults``): ``rogue-idevid`` makes a counterfeit
whose IDevID is signed by a CA that is not its vendor's; ``foreign-voucher`` issues its voucher
to an owner outside the building.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from testbed import pki
from testbed.contracts import proxy as proxy_contract
from testbed.contracts.node_config import Attr, Role
from testbed.node import material as M
from testbed.pki import firmware, keys
from testbed.plan.model import NodePlan, Plan

# EDHOC kids: a trust center must resolve every initiator's kid to one credential. With at most
# this many initiators in a building, one-byte kids keep messages as small as RFC 9529's traces;
# beyond it, kids derived from the keys (4 bytes) stay unique without coordination.
COMPACT_KID_LIMIT = 47
# Releases every vendor cloud serves per model, besides the model's factory version: one
# minor and one major update, so that update, no-op and downgrade can all be exercised.
FIRMWARE_VERSIONS = ("1.0.0", "1.1.0", "2.0.0")


@dataclass
class Minted:
    vendors: dict[str, pki.Vendor] = field(default_factory=dict)
    domains: dict[str, pki.Domain] = field(default_factory=dict)
    devices: dict[str, pki.DeviceIdentity] = field(default_factory=dict)  # by node name
    vouchers: dict[str, pki.Voucher] = field(default_factory=dict)  # by node name
    psks: dict[str, bytes] = field(default_factory=dict, repr=False)  # dtls-psk things


def _things(plan: Plan) -> list[NodePlan]:
    return [n for n in plan.nodes if n.role == Role.THING]


def _backends(plan: Plan) -> list[NodePlan]:
    return [
        n
        for n in plan.nodes
        if n.role == Role.INTERNET_HOST and Attr.TRUST_CENTERS in n.config.attributes
    ]


def _vendor_clouds(plan: Plan) -> list[NodePlan]:
    return [
        n
        for n in plan.nodes
        if n.role == Role.INTERNET_HOST and n.config.attributes.get(Attr.KIND) == "vendor-cloud"
    ]


def _trust_centers(plan: Plan) -> list[NodePlan]:
    return [n for n in plan.nodes if n.role == Role.TRUST_CENTER]


def _kids(plan: Plan) -> Iterator[bytes | None]:
    initiators = len(_things(plan)) + len(_backends(plan))
    if initiators > COMPACT_KID_LIMIT:
        while True:
            yield None  # derived from the key
    for index in range(1, initiators + 1):
        yield pki.compact_kid(index)


def mint(plan: Plan, run_dir: Path) -> Minted:
    minted = Minted()
    pki_dir = run_dir / "pki"
    things = _things(plan)
    vendor_names = sorted(
        {t.config.attributes[Attr.VENDOR] for t in things}
        | {
            v
            for tc in _trust_centers(plan)
            for v in tc.config.attributes.get(Attr.TRUSTED_VENDORS, "").split(",")
            if v
        }
    )
    for name in vendor_names:
        minted.vendors[name] = pki.new_vendor(name)
        pki.write_vendor(pki_dir / "vendors" / name, minted.vendors[name])
    for tc in _trust_centers(plan):
        name = tc.config.attributes[Attr.DOMAIN]
        minted.domains[name] = pki.new_domain(name)
        pki.write_domain(pki_dir / "domains" / name, minted.domains[name])

    kids = _kids(plan)
    rogue: pki.Vendor | None = None
    foreign: pki.Domain | None = None
    for thing in things:
        attrs = thing.config.attributes
        faults = set(filter(None, attrs.get("faults", "").split(",")))
        vendor = minted.vendors[attrs[Attr.VENDOR]]
        maker = vendor
        if "rogue-idevid" in faults:
            # A counterfeiter uses the vendor's name with its own CA.
            rogue = rogue or pki.new_vendor(attrs[Attr.VENDOR])
            maker = rogue
        device = pki.manufacture(maker, attrs["serial"], attrs[Attr.MODEL], kid=next(kids))
        owner = minted.domains[attrs[Attr.DOMAIN]].owner_public_key
        if "foreign-voucher" in faults:
            foreign = foreign or pki.new_domain("foreign-owner")
            owner = foreign.owner_public_key
        # The voucher is the genuine vendor's statement (a counterfeiter cannot make one).
        voucher = pki.issue_voucher(vendor, device, owner)
        minted.devices[thing.name] = device
        minted.vouchers[thing.name] = voucher
        pki.write_device(pki_dir / "things" / thing.name, device, voucher)
        factory = {f"{M.IDENTITY}/{n}": b for n, b in pki.device_files(device).items()}
        if attrs.get("profile") == "dtls-psk":
            # The factory PSK: in the thing, and with the voucher for its owner to import.
            psk = minted.psks[thing.name] = secrets.token_bytes(M.PSK_BYTES)
            factory[M.DEVICE_PSK] = psk
            pki.write_files(pki_dir / "things" / thing.name, {M.DEVICE_RECORD_PSK: psk})
        # The genuine vendor's CA, also for a counterfeit: firmware comes from the vendor.
        factory[M.THING_VENDOR_CA] = _der(vendor.ca_cert)
        _write_node(run_dir, thing, factory)

    backend_ids: dict[str, tuple[keys.PrivateKey, pki.Ccs]] = {}
    for host in _backends(plan):
        key = keys.generate()
        kid = next(kids) or pki.derive_kid(key.public_key())
        credential = pki.Ccs(f"urn:testbed:host:{host.name}", kid, key.public_key())
        backend_ids[host.name] = (key, credential)

    tc_ccs: dict[str, pki.Ccs] = {}
    for tc in _trust_centers(plan):
        domain_name = tc.config.attributes[Attr.DOMAIN]
        domain = minted.domains[domain_name]
        key = keys.generate()
        credential = pki.Ccs(f"urn:testbed:tc:{domain_name}", pki.compact_kid(0), key.public_key())
        tc_ccs[domain_name] = credential
        files = {f"tc/{n}": b for n, b in pki.identity_files(key, credential, "tc").items()}
        files[M.DOMAIN_CA_KEY] = keys.private_pem(domain.ca.key)
        files[M.DOMAIN_CA_CERT] = _der(domain.ca_cert)
        files[M.OWNER_PUB] = keys.public_pem(domain.owner_public_key)
        for vendor_name in filter(
            None, tc.config.attributes.get(Attr.TRUSTED_VENDORS, "").split(",")
        ):
            files[f"{M.VENDORS_DIR}/{vendor_name}/{M.VENDOR_CA_CERT}"] = _der(
                minted.vendors[vendor_name].ca_cert
            )
        # With `commissioning: auto` the owner has imported the vouchers of the things it bought
        # before they arrive (every thing planned into this domain, faulty ones included);
        # otherwise the install phase imports them through the trust center's control action.
        for thing in things:
            attrs = thing.config.attributes
            if attrs[Attr.DOMAIN] != domain_name or attrs.get(Attr.AUTO_COMMISSION) == "false":
                continue
            device = minted.devices[thing.name]
            record = f"{M.DEVICES_DIR}/{device.serial}"
            files[f"{record}/{M.VOUCHER}"] = minted.vouchers[thing.name].to_bytes()
            files[f"{record}/{M.DEVICE_RECORD_IDEVID}"] = _der(device.idevid)
            files[f"{record}/{M.DEVICE_RECORD_CCS}"] = device.ccs.to_bytes()
            if thing.name in minted.psks:
                files[f"{record}/{M.DEVICE_RECORD_PSK}"] = minted.psks[thing.name]
            files[f"{record}/{M.DEVICE_RECORD_NAME}"] = thing.name.encode()
        for host_name, (_, credential) in backend_ids.items():
            files[f"{M.BACKENDS_DIR}/{host_name}.ccs.cbor"] = credential.to_bytes()
        _write_node(run_dir, tc, files)

    for thing in things:
        domain_name = thing.config.attributes[Attr.DOMAIN]
        anchors = {
            M.TRUST_CENTER_CCS: tc_ccs[domain_name].to_bytes(),
            # dtls-cert: the domain CA certifies the trust center's DTLS certificate.
            M.TRUST_CENTER_CA: _der(minted.domains[domain_name].ca_cert),
        }
        _write_node(run_dir, thing, anchors)
    for host in _backends(plan):
        key, credential = backend_ids[host.name]
        files = {
            f"{M.IDENTITY}/{n}": b for n, b in pki.identity_files(key, credential, "host").items()
        }
        for domain_name, ccs in tc_ccs.items():
            files[f"{M.TRUST_CENTERS_DIR}/{domain_name}.ccs.cbor"] = ccs.to_bytes()
        _write_node(run_dir, host, files)
    _mint_proxy_psks(plan, run_dir, _backends(plan))
    clouds = _vendor_clouds(plan)
    if clouds:
        releases = _firmware(minted, things)
        for cloud in clouds:
            _write_node(run_dir, cloud, releases)
    return minted


def _mint_proxy_psks(plan: Plan, run_dir: Path, backends: list[NodePlan]) -> None:
    """Hop-by-hop proxies: a PSK per thing behind the router (the thing's operation DTLS
    server and the proxy hold it) and one per backend (the backend's DTLS to the proxy)."""
    routers = {n.name: n for n in plan.nodes if n.role == "border_router"}
    for router in routers.values():
        raw = router.config.attributes.get(proxy_contract.ATTRIBUTE)
        if raw is None:
            continue
        config = proxy_contract.ProxyConfig.parse(raw)
        if proxy_contract.HOP_BY_HOP not in config.modes:
            continue
        files: dict[str, bytes] = {}
        for thing in _things(plan):
            if thing.config.attributes.get(proxy_contract.THING_IDENTITY_ATTRIBUTE) != router.name:
                continue
            psk = secrets.token_bytes(M.PSK_BYTES)
            files[proxy_contract.thing_psk(thing.name)] = psk
            _write_node(run_dir, thing, {proxy_contract.OPERATION_PSK: psk})
        for backend in backends:
            psk = secrets.token_bytes(M.PSK_BYTES)
            files[proxy_contract.backend_psk(backend.name)] = psk
            _write_node(run_dir, backend, {proxy_contract.router_psk(router.name): psk})
        _write_node(run_dir, router, files)


def _firmware(minted: Minted, things: list[NodePlan]) -> dict[str, bytes]:
    """The vendor cloud's release files for every (vendor, model) of the building."""
    factory: dict[tuple[str, str], set[str]] = {}
    for thing in things:
        attrs = thing.config.attributes
        versions = factory.setdefault(
            (attrs[Attr.VENDOR], attrs[Attr.MODEL]), set(FIRMWARE_VERSIONS)
        )
        if attrs.get(Attr.FIRMWARE):
            versions.add(attrs[Attr.FIRMWARE])
    files: dict[str, bytes] = {}
    for (vendor_name, model), versions in sorted(factory.items()):
        ordered = sorted(versions, key=firmware.parse_version)
        for release in firmware.mint_releases(minted.vendors[vendor_name], model, ordered):
            image, manifest = M.firmware_files(vendor_name, model, release.name)
            files[image], files[manifest] = release.image, release.manifest
    return files


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _write_node(run_dir: Path, node: NodePlan, files: dict[str, bytes]) -> None:
    pki.write_files(run_dir / "nodes" / node.name, files)
