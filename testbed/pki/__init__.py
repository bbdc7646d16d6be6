"""The testbed PKI: vendor and domain CAs, device identities, ownership vouchers, CRLs.

Imports only the standard library, ``cryptography`` and ``cbor2`` (and ``testbed.errors``,
``testbed.atomic``):
node-side code, the trust center in its container, imports the verification functions.
Every failure is a ``PkiError``.

    vendor = new_vendor("acme")                       # P-256 root; signs IDevIDs and vouchers
    domain = new_domain("hvac")                       # owner key + domain CA (LDevIDs, CRLs)
    thing = manufacture(vendor, "SN-0001", "thermo")  # key, IDevID, CCS
    voucher = issue_voucher(vendor, thing, domain.owner_public_key)
    owner = verify_voucher_chain(voucher, vendor.public_key, "SN-0001", thing.public_key)
    write_device(run_dir / "thermostat-01", thing, voucher)

Module map: ``keys`` (P-256), ``der`` (hardwareModuleName by hand), ``names`` (SAN and URN
rules), ``ccs`` (EDHOC credential), ``cose`` (COSE_Sign1 ES256), ``ca``, ``device``,
``voucher``, ``crl``, ``verify`` (chain validation), ``store`` (files).
"""

from testbed.pki.ca import CertificateAuthority, Domain, Vendor, load_cert, new_domain, new_vendor
from testbed.pki.ccs import Ccs, compact_kid, derive_kid
from testbed.pki.crl import Revocation, build_crl, is_revoked, verify_crl
from testbed.pki.device import DeviceIdentity, issue_ldevid, make_csr, manufacture
from testbed.pki.names import DeviceName, device_name, device_urn, parse_device_urn
from testbed.pki.store import (
    device_files,
    domain_files,
    identity_files,
    load_device,
    load_domain,
    load_vendor,
    load_voucher,
    vendor_files,
    write_device,
    write_domain,
    write_files,
    write_vendor,
)
from testbed.pki.verify import verify_device_cert
from testbed.pki.voucher import (
    Voucher,
    extend_voucher,
    issue_voucher,
    verify_voucher_chain,
    voucher_names_owner,
)

__all__ = [
    "Ccs",
    "CertificateAuthority",
    "DeviceIdentity",
    "DeviceName",
    "Domain",
    "Revocation",
    "Vendor",
    "Voucher",
    "build_crl",
    "compact_kid",
    "derive_kid",
    "device_files",
    "device_name",
    "device_urn",
    "domain_files",
    "extend_voucher",
    "identity_files",
    "is_revoked",
    "issue_ldevid",
    "issue_voucher",
    "load_cert",
    "load_device",
    "load_domain",
    "load_vendor",
    "load_voucher",
    "make_csr",
    "manufacture",
    "new_domain",
    "new_vendor",
    "parse_device_urn",
    "vendor_files",
    "verify_crl",
    "verify_device_cert",
    "verify_voucher_chain",
    "voucher_names_owner",
    "write_device",
    "write_domain",
    "write_files",
    "write_vendor",
]
