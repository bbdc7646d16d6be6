"""PKI material on disk: what each node gets, written safely, and read back.

Layout of a directory (all files mode 0600, directories 0700; ``*.key.*`` are private keys):

    device (a thing)       device.key.pem     PKCS#8 PEM, the factory key
                           device.key.cbor    the same key as COSE_Key {1:2, -1:1, -4:d}, the file
                                              aiocoap's EDHOC credentials load (private_key_file)
                           idevid.crt.pem     IDevID, PEM and DER
                           idevid.crt.der
                           device.ccs.cbor    the CCS (EDHOC credential), deterministic CBOR
                           voucher.cbor       the ownership voucher chain, when given
    vendor                 vendor-ca.key.pem, vendor-ca.crt.pem, vendor-ca.crt.der
    domain                 owner.key.pem, owner.pub.pem,
                           domain-ca.key.pem, domain-ca.crt.pem, domain-ca.crt.der

The ``*_files`` functions return these as {name: bytes}, so a planner can compose a node's
directory (say, a trust center: domain files plus ``vendors/<name>.crt.pem`` and
``vouchers/<serial>.cbor``) and write it with ``write_files``.

Writing: a new directory is staged next to its final place and renamed into it, so it appears
complete or not at all. Into an existing directory each file is replaced atomically
(write, fsync, rename); a private key that differs from the one on disk is refused before
anything is written, unless the caller says ``replace_keys=True``: a silently replaced key
would orphan every certificate and voucher that names the old one.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from testbed.atomic import write_atomically
from testbed.errors import PkiError
from testbed.pki import _cbor, keys
from testbed.pki.ca import CertificateAuthority, Domain, Vendor, load_cert
from testbed.pki.ccs import Ccs
from testbed.pki.device import DeviceIdentity
from testbed.pki.names import device_name
from testbed.pki.voucher import Voucher

FILE_MODE = 0o600
DIR_MODE = 0o700

DEVICE_KEY_PEM = "device.key.pem"
DEVICE_KEY_COSE = "device.key.cbor"
IDEVID_PEM = "idevid.crt.pem"
IDEVID_DER = "idevid.crt.der"
DEVICE_CCS = "device.ccs.cbor"
VOUCHER = "voucher.cbor"
VENDOR_CA_KEY = "vendor-ca.key.pem"
VENDOR_CA_PEM = "vendor-ca.crt.pem"
VENDOR_CA_DER = "vendor-ca.crt.der"
OWNER_KEY = "owner.key.pem"
OWNER_PUB = "owner.pub.pem"
DOMAIN_CA_KEY = "domain-ca.key.pem"
DOMAIN_CA_PEM = "domain-ca.crt.pem"
DOMAIN_CA_DER = "domain-ca.crt.der"


def is_key_file(name: str) -> bool:
    return ".key." in PurePosixPath(name).name


# -- what goes into a directory ----------------------------------------------------------------


def device_files(device: DeviceIdentity, voucher: Voucher | None = None) -> dict[str, bytes]:
    files = {
        DEVICE_KEY_PEM: keys.private_pem(device.key),
        DEVICE_KEY_COSE: _cbor.dumps(keys.cose_private_key(device.key)),
        IDEVID_PEM: device.idevid.public_bytes(serialization.Encoding.PEM),
        IDEVID_DER: device.idevid.public_bytes(serialization.Encoding.DER),
        DEVICE_CCS: device.ccs.to_bytes(),
    }
    if voucher is not None:
        files[VOUCHER] = voucher.to_bytes()
    return files


def identity_files(key: keys.PrivateKey, credential: Ccs, stem: str) -> dict[str, bytes]:
    """An EDHOC identity that is not a thing (trust center, backend): key and CCS files."""
    return {
        f"{stem}.key.pem": keys.private_pem(key),
        f"{stem}.key.cbor": _cbor.dumps(keys.cose_private_key(key)),
        f"{stem}.ccs.cbor": credential.to_bytes(),
    }


def vendor_files(vendor: Vendor) -> dict[str, bytes]:
    return {
        VENDOR_CA_KEY: keys.private_pem(vendor.ca.key),
        VENDOR_CA_PEM: vendor.ca_cert.public_bytes(serialization.Encoding.PEM),
        VENDOR_CA_DER: vendor.ca_cert.public_bytes(serialization.Encoding.DER),
    }


def domain_files(domain: Domain) -> dict[str, bytes]:
    return {
        OWNER_KEY: keys.private_pem(domain.owner_key),
        OWNER_PUB: keys.public_pem(domain.owner_public_key),
        DOMAIN_CA_KEY: keys.private_pem(domain.ca.key),
        DOMAIN_CA_PEM: domain.ca_cert.public_bytes(serialization.Encoding.PEM),
        DOMAIN_CA_DER: domain.ca_cert.public_bytes(serialization.Encoding.DER),
    }


def write_device(directory: Path, device: DeviceIdentity, voucher: Voucher | None = None) -> None:
    write_files(directory, device_files(device, voucher))


def write_vendor(directory: Path, vendor: Vendor) -> None:
    write_files(directory, vendor_files(vendor))


def write_domain(directory: Path, domain: Domain) -> None:
    write_files(directory, domain_files(domain))


# -- reading back ------------------------------------------------------------------------------


def _read(directory: Path, name: str) -> bytes:
    try:
        return (directory / name).read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read {directory / name}: {exc.strerror}") from exc


def load_device(directory: Path) -> DeviceIdentity:
    """The device identity in ``directory`` (checked for consistency)."""
    key = keys.load_private(_read(directory, DEVICE_KEY_PEM), str(directory / DEVICE_KEY_PEM))
    idevid = load_cert(_read(directory, IDEVID_DER), str(directory / IDEVID_DER))
    ccs = Ccs.from_bytes(_read(directory, DEVICE_CCS))
    name = device_name(idevid.extensions, str(directory / IDEVID_DER))
    model = _attribute(idevid.subject, NameOID.COMMON_NAME, directory / IDEVID_DER)
    return DeviceIdentity(name.vendor, model, name.serial, key, idevid, ccs).check()


def load_voucher(directory: Path) -> Voucher | None:
    path = directory / VOUCHER
    return Voucher.from_bytes(_read(directory, VOUCHER)) if path.exists() else None


def load_vendor(directory: Path) -> Vendor:
    ca = _load_ca(directory, VENDOR_CA_KEY, VENDOR_CA_DER, "vendor")
    return Vendor(
        _attribute(ca.cert.subject, NameOID.ORGANIZATION_NAME, directory / VENDOR_CA_DER), ca
    )


def load_domain(directory: Path) -> Domain:
    ca = _load_ca(directory, DOMAIN_CA_KEY, DOMAIN_CA_DER, "domain")
    owner = keys.load_private(_read(directory, OWNER_KEY), str(directory / OWNER_KEY))
    return Domain(
        _attribute(ca.cert.subject, NameOID.ORGANIZATION_NAME, directory / DOMAIN_CA_DER), owner, ca
    )


def _load_ca(directory: Path, key_name: str, cert_name: str, what: str) -> CertificateAuthority:
    key = keys.load_private(_read(directory, key_name), str(directory / key_name))
    cert = load_cert(_read(directory, cert_name), str(directory / cert_name))
    return CertificateAuthority.from_parts(key, cert, f"{what} in {directory}")


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier, where: Path) -> str:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1 or not isinstance(values[0].value, str):
        raise PkiError(
            f"{where}: expected exactly one {oid.dotted_string} attribute in the subject"
        )
    return values[0].value


# -- writing -----------------------------------------------------------------------------------


def write_files(directory: Path, files: Mapping[str, bytes], *, replace_keys: bool = False) -> None:
    """Write ``files`` ({relative name: content}) under ``directory``; see the module doc."""
    for name in files:
        _check_name(name)
    directory = Path(directory)
    try:
        _make_parents(directory.parent)
        if not os.path.lexists(directory):
            _write_new(directory, files)
        else:
            _write_existing(directory, files, replace_keys)
    except OSError as exc:
        raise PkiError(f"cannot write PKI material to {directory}: {exc}") from exc


def _check_name(name: str) -> None:
    # Checked on the raw string: PurePosixPath would quietly normalize "./x" and "a//b".
    if "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
        raise PkiError(f"bad file name {name!r}: must be a relative path without . or ..")


def _make_parents(path: Path) -> None:
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        p.mkdir(mode=DIR_MODE)
        os.chmod(p, DIR_MODE)  # mkdir's mode is filtered by the umask


def _write_new(directory: Path, files: Mapping[str, bytes]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        os.chmod(staging, DIR_MODE)
        _write_all(staging, files)
        # rename() of a directory onto a missing path is atomic; if someone else created the
        # directory meanwhile it fails (or replaces an empty one), never merges.
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(directory.parent)


def _write_existing(directory: Path, files: Mapping[str, bytes], replace_keys: bool) -> None:
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise PkiError(f"{directory} exists and is not a directory (or is a symlink)")
    os.chmod(directory, DIR_MODE)
    changed: dict[str, bytes] = {}
    conflicts = []
    for name, content in files.items():
        target = directory / name
        _check_no_symlinks(directory, name)
        if os.path.lexists(target):
            if not target.is_file() or target.is_symlink():
                raise PkiError(f"{target} exists and is not a regular file")
            if target.read_bytes() == content:
                continue
            if is_key_file(name) and not replace_keys:
                conflicts.append(name)
        changed[name] = content
    if conflicts:
        raise PkiError(
            f"{directory} already holds different private keys: {', '.join(sorted(conflicts))}",
            "remove the directory to mint afresh, or pass replace_keys=True to replace them",
        )
    _write_all(directory, changed)


def _check_no_symlinks(root: Path, name: str) -> None:
    """Refuse a symlinked subdirectory on the way to ``root/name``: it would lead elsewhere."""
    path = root
    for part in name.split("/")[:-1]:
        path = path / part
        if os.path.lexists(path) and not stat.S_ISDIR(os.lstat(path).st_mode):
            raise PkiError(f"{path} exists and is not a directory (or is a symlink)")


def _write_all(root: Path, files: Mapping[str, bytes]) -> None:
    for name, content in files.items():
        _write_file(root, name, content)
    # The renames are durable only once each directory that holds them is synced.
    for parent in {(root / name).parent for name in files} | {root}:
        _fsync_dir(parent)


def _write_file(root: Path, name: str, content: bytes) -> None:
    """Write ``root/name`` atomically with mode 0600, making 0700 subdirectories as needed."""
    target = root / name
    parent = target.parent
    if parent != root:
        _make_parents(parent)
    write_atomically(target, content, FILE_MODE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
