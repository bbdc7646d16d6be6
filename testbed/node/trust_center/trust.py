"""What a trust center signs with and whom it trusts, read once at start from its material.

Everything here comes from the read-only material directory (``testbed.node.material`` names
the files). A missing or unusable file is a ``ConfigError``: a trust center that cannot prove
its identity or sign certificates would only produce misleading refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from testbed.errors import PkiError
from testbed.node import material as M
from testbed.node.coap.credentials import Credential, EdhocIdentity
from testbed.node.coap.errors import CredentialError
from testbed.node.errors import ConfigError
from testbed.pki import CertificateAuthority, Domain, keys, load_cert


@dataclass(frozen=True)
class VendorCa:
    cert: x509.Certificate
    public_key: keys.PublicKey  # verifies IDevIDs and the first link of vouchers


@dataclass(frozen=True)
class TrustAnchors:
    identity: EdhocIdentity  # the trust center's EDHOC key and CCS
    domain: Domain  # name + domain CA (issues LDevIDs, signs CRLs); see load_trust
    owner_public_key: keys.PublicKey  # vouchers must end here
    vendor_cas: dict[str, VendorCa]  # trusted vendors only
    backends: dict[bytes, tuple[str, Credential]]  # kid -> (node name, credential)

    @property
    def ca(self) -> CertificateAuthority:
        return self.domain.ca

    def trusts(self, vendor: str) -> bool:
        return vendor in self.vendor_cas


def parse_vendor_list(value: str | None) -> list[str] | None:
    """The ``trusted-vendors`` attribute; None when absent (then every vendor CA present)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def load_trust(root: Path, domain_name: str, trusted_vendors: list[str] | None) -> TrustAnchors:
    try:
        identity = EdhocIdentity.from_files(root / M.TC_KEY_COSE, root / M.TC_CCS)
    except (CredentialError, OSError) as exc:
        raise ConfigError(
            f"trust center EDHOC identity unusable: {exc}",
            f"mint {M.TC_KEY_COSE} and {M.TC_CCS} under {root}",
        ) from exc
    try:
        ca_key = keys.load_private(_read(root / M.DOMAIN_CA_KEY), M.DOMAIN_CA_KEY)
        ca_cert = load_cert(_read(root / M.DOMAIN_CA_CERT), M.DOMAIN_CA_CERT)
        ca = CertificateAuthority.from_parts(ca_key, ca_cert, "domain CA")
        owner = keys.load_public(_read(root / M.OWNER_PUB), M.OWNER_PUB)
    except PkiError as exc:
        raise ConfigError(f"domain material under {root} unusable: {exc.message}") from exc
    organization = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if [a.value for a in organization] != [domain_name]:
        # LDevIDs carry O=<domain>; a CA of another domain would mislabel every one of them.
        raise ConfigError(
            f"domain CA {ca_cert.subject.rfc4514_string()} is not the CA of domain {domain_name!r}",
            "the 'domain' attribute and domain/domain-ca.crt.der must belong together",
        )
    # pki.issue_ldevid takes a Domain but reads only its name and CA. The owner's private key
    # never reaches the trust center (it stays with the owner), so a throwaway key fills the
    # field; nothing here signs with it.
    domain = Domain(domain_name, keys.generate(), ca)
    return TrustAnchors(
        identity=identity,
        domain=domain,
        owner_public_key=owner,
        vendor_cas=_vendor_cas(root / M.VENDORS_DIR, trusted_vendors),
        backends=_backends(root / M.BACKENDS_DIR),
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _vendor_cas(directory: Path, trusted: list[str] | None) -> dict[str, VendorCa]:
    present = (
        sorted(p.name for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []
    )
    names = present if trusted is None else trusted
    cas: dict[str, VendorCa] = {}
    for name in names:
        path = directory / name / M.VENDOR_CA_CERT
        if not path.is_file():
            raise ConfigError(
                f"vendor {name!r} is trusted but {path} is missing",
                "mint the vendor CA certificate into the trust center's material",
            )
        try:
            cert = load_cert(_read(path), str(path))
            public = cert.public_key()
            if not isinstance(public, keys.PublicKey):
                raise PkiError(f"{path}: not a P-256 CA")
            keys.require_p256(public, str(path))
        except PkiError as exc:
            raise ConfigError(exc.message) from exc
        cas[name] = VendorCa(cert, public)
    return cas


def _backends(directory: Path) -> dict[bytes, tuple[str, Credential]]:
    found: dict[bytes, tuple[str, Credential]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.ccs.cbor")):
        node = path.name.removesuffix(".ccs.cbor")
        try:
            credential = Credential.from_file(path)
        except (CredentialError, OSError) as exc:
            raise ConfigError(f"backend credential {path} unusable: {exc}") from exc
        if credential.kid in found:
            raise ConfigError(
                f"backends {found[credential.kid][0]} and {node} share kid {credential.kid.hex()}",
                "every EDHOC initiator needs its own kid",
            )
        found[credential.kid] = (node, credential)
    return found
