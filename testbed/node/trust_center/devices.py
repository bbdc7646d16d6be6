"""Device records: the voucher, IDevID and CCS of every thing the owner bought.

Two sources, read at start: ``devices/<serial>/`` in the (read-only) material directory, what
the owner imported before the run, and the same layout under the trust center's state volume,
where the ``import-device`` control action puts records at run time. A record in the state
volume wins over one of the same serial in the material.

Parsing here only checks that the three files are readable and describe one serial with one
kid; whether the record is *acceptable* (trusted vendor, IDevID chain, voucher chain, owner)
is the admission policy's question, asked at each enrollment so that every refusal is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from testbed.errors import PkiError
from testbed.node import material as M
from testbed.node.coap.credentials import Credential
from testbed.node.coap.errors import CredentialError
from testbed.pki import Ccs, Voucher, device_name, load_cert, write_files


class RecordError(Exception):
    """A device record that cannot be used at all (unreadable, inconsistent serial or kid)."""


@dataclass(frozen=True)
class DeviceRecord:
    serial: str
    vendor: str  # as the IDevID claims it; verified by the admission policy
    model: str
    voucher: Voucher
    idevid: x509.Certificate
    ccs: Ccs
    credential: Credential  # the CCS as the EDHOC layer uses it
    files: tuple[tuple[str, bytes], ...]  # the raw files, to compare re-imports
    # The name the owner knows the thing by (its sale record's name.txt): bound to the serial,
    # so that a thing cannot enroll under another thing's name. None: not bound by the record.
    name: str | None = None

    @property
    def kid(self) -> bytes:
        return self.credential.kid


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def parse_record(
    voucher: bytes, idevid: bytes, ccs: bytes, serial: str | None, name: str | None = None
) -> DeviceRecord:
    """A record from the three files' bytes; ``serial``, when given, must be the IDevID's."""
    if name is not None and not _NAME.fullmatch(name):
        raise RecordError(
            f"thing name {name!r} is not usable: 1-63 characters of A-Z a-z 0-9 . _ -"
        )
    try:
        cert = load_cert(idevid, "IDevID")
        device = device_name(cert.extensions, "IDevID")
        parsed_voucher = Voucher.from_bytes(voucher)
        parsed_ccs = Ccs.from_bytes(ccs)
        credential = Credential.from_cbor(ccs)
    except (PkiError, CredentialError) as exc:
        raise RecordError(exc.message) from exc
    if serial is not None and device.serial != serial:
        raise RecordError(f"record for serial {serial!r} holds the IDevID of {device.serial!r}")
    models = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    model = str(models[0].value) if len(models) == 1 else "unknown"
    files = [(M.VOUCHER, voucher), (M.DEVICE_RECORD_IDEVID, idevid), (M.DEVICE_RECORD_CCS, ccs)]
    if name is not None:
        files.append((M.DEVICE_RECORD_NAME, name.encode()))
    return DeviceRecord(
        serial=device.serial,
        vendor=device.vendor,
        model=model,
        voucher=parsed_voucher,
        idevid=cert,
        ccs=parsed_ccs,
        credential=credential,
        files=tuple(files),
        name=name,
    )


def read_record(directory: Path) -> DeviceRecord:
    try:
        voucher = (directory / M.VOUCHER).read_bytes()
        idevid = (directory / M.DEVICE_RECORD_IDEVID).read_bytes()
        ccs = (directory / M.DEVICE_RECORD_CCS).read_bytes()
        named = directory / M.DEVICE_RECORD_NAME
        name = named.read_text(encoding="utf-8").strip() if named.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{directory}: {getattr(exc, 'strerror', None) or exc}") from exc
    return parse_record(voucher, idevid, ccs, serial=directory.name, name=name)


class DeviceBook:
    """The records by serial and by kid (the EDHOC layer asks by kid, once per handshake)."""

    def __init__(self) -> None:
        self._by_serial: dict[str, DeviceRecord] = {}
        self._by_kid: dict[bytes, DeviceRecord] = {}

    def __len__(self) -> int:
        return len(self._by_serial)

    def __iter__(self) -> Iterator[DeviceRecord]:
        return iter(self._by_serial.values())

    def by_kid(self, kid: bytes) -> DeviceRecord | None:
        return self._by_kid.get(kid)

    def by_serial(self, serial: str) -> DeviceRecord | None:
        return self._by_serial.get(serial)

    def check(self, record: DeviceRecord, reserved_kids: frozenset[bytes] = frozenset()) -> bool:
        """Whether ``put`` would change anything; RecordError if it would be refused."""
        holder = self._by_kid.get(record.kid)
        if (holder is not None and holder.serial != record.serial) or record.kid in reserved_kids:
            # Two credentials under one kid would make "who is this peer" ambiguous.
            owner = f"{holder.serial}" if holder is not None else "a backend"
            raise RecordError(f"kid {record.kid.hex()} of {record.serial} is taken by {owner}")
        old = self._by_serial.get(record.serial)
        return old is None or old.files != record.files

    def put(self, record: DeviceRecord, reserved_kids: frozenset[bytes] = frozenset()) -> bool:
        """Add or replace a record; False if an identical one is there already."""
        if not self.check(record, reserved_kids):
            return False
        old = self._by_serial.get(record.serial)
        if old is not None:
            self._by_kid.pop(old.kid, None)
        self._by_serial[record.serial] = record
        self._by_kid[record.kid] = record
        return True


def scan(directory: Path) -> Iterator[tuple[Path, DeviceRecord | RecordError]]:
    """Every record directory under ``directory`` (sorted), parsed or with its error."""
    if not directory.is_dir():
        return
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            yield sub, read_record(sub)
        except RecordError as exc:
            yield sub, exc


def store(directory: Path, record: DeviceRecord) -> None:
    """Write ``record`` to ``directory/<serial>/`` (atomic per file, mode 0600)."""
    try:
        write_files(directory / record.serial, dict(record.files))
    except PkiError as exc:
        raise RecordError(exc.message) from exc
