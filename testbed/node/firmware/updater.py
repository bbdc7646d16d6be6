"""The thing's firmware update: fetch, verify, install; and what is installed, on its volume.

Checks, in this order, each with its refusal reason (the first failure decides):

    1. the requested version parses and is newer than the installed one
                                  equal: nothing to do; older: downgrade (nothing fetched)
    2. the manifest can be fetched                                          unavailable
    3. it is a COSE_Sign1 manifest                                          bad-manifest
       ... signed by the thing's vendor CA key                               bad-signature
    4. it names the thing's vendor and model                                 wrong-model
    5. its (signed) version is newer than the installed one                  downgrade
       ... and is the version that was asked for                            version-mismatch
    6. at most its size of image can be fetched                             unavailable
    7. the image's SHA-256 and size are the manifest's                      digest-mismatch

Only the signed manifest is believed: asking for 2.0.0 and being served a genuine 1.0.0 (a
replayed old release) is refused as a downgrade at step 5. A refusal installs nothing: the
installed image and record stay exactly as they were.

State volume:
    firmware.json          {schema, version, digest, size, image, installed_at, previous}
    firmware/<version>.bin the installed image; the previous one is deleted after the switch
Before the first update the installed version is the factory's (attribute ``firmware``).
"""

from __future__ import annotations

import enum
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from testbed.errors import PkiError
from testbed.node.coap.transport import create_context
from testbed.node.errors import StateError
from testbed.node.firmware import api
from testbed.node.firmware.client import MAX_MANIFEST, FetchError, Transfer, get_blockwise, uri_of
from testbed.node.statefile import read_json, write_json_atomic
from testbed.pki import keys
from testbed.pki import store as pki_store
from testbed.pki.firmware import Manifest, ManifestSignatureError, parse_version, verify_manifest

INDEX = "firmware.json"
IMAGES = "firmware"


class Refusal(enum.Enum):
    UNAVAILABLE = "unavailable"
    BAD_MANIFEST = "bad-manifest"
    BAD_SIGNATURE = "bad-signature"
    WRONG_MODEL = "wrong-model"
    DOWNGRADE = "downgrade"
    VERSION_MISMATCH = "version-mismatch"
    DIGEST_MISMATCH = "digest-mismatch"


class Refused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Installed:
    version: str | None
    digest: str | None = None  # hex; None for the factory image (not on the volume)
    installed_at: float | None = None
    previous: str | None = None


class FirmwareStore:
    def __init__(self, state_dir: Path, factory_version: str | None) -> None:
        self.root = state_dir
        self.factory_version = factory_version

    def installed(self) -> Installed:
        data = read_json(self.root / INDEX)
        if data is None:
            return Installed(self.factory_version)
        try:
            return Installed(
                version=str(data["version"]),
                digest=str(data["digest"]),
                installed_at=float(data["installed_at"]),
                previous=None if data.get("previous") is None else str(data["previous"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                f"{self.root / INDEX} is not a valid firmware record: {exc!r}",
                "inspect it; a successful update replaces it",
            ) from exc

    def install(self, manifest: Manifest, image: bytes) -> Installed:
        """Image file first, then the record (the switch), then the old image goes."""
        before = self.installed()
        name = f"{IMAGES}/{manifest.version}.bin"
        try:
            pki_store.write_files(self.root, {name: image})
        except PkiError as exc:
            raise StateError(exc.message, exc.hint) from exc
        write_json_atomic(
            self.root / INDEX,
            {
                "schema": 1,
                "version": manifest.version,
                "digest": manifest.digest.hex(),
                "size": manifest.size,
                "image": name,
                "installed_at": time.time(),
                "previous": before.version,
            },
        )
        for old in (self.root / IMAGES).glob("*.bin"):
            if old.name != f"{manifest.version}.bin":
                old.unlink(missing_ok=True)
        return self.installed()


def newer(candidate: str, installed: str | None) -> bool:
    return installed is None or parse_version(candidate) > parse_version(installed)


@dataclass
class UpdateResult:
    outcome: str  # "updated", "refused", "unchanged"
    requested: str
    image: str
    firmware: str | None  # installed after the attempt
    previous: str | None  # installed before it
    reason: str | None = None  # refusal reason
    detail: str = ""
    transfer: Transfer = field(default_factory=Transfer)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "changed": self.outcome == "updated",
            "refusal": self.reason,
            "detail": self.detail,
            "requested": self.requested,
            "image": self.image,
            "firmware": self.firmware,
            "previous_firmware": self.previous,
            "requests": self.transfer.requests,
            "bytes": self.transfer.bytes,
            "duration_s": round(self.duration_s, 3),
        }


class FirmwareUpdater:
    def __init__(
        self,
        *,
        vendor: str,
        model: str,
        vendor_ca_cert: Path,
        cloud_uri: str,
        store: FirmwareStore,
        block_size: int = api.DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.vendor = vendor
        self.model = model
        self.vendor_ca_cert = vendor_ca_cert
        self.cloud_uri = cloud_uri
        self.store = store
        self.block_size = block_size

    def vendor_key(self) -> keys.PublicKey:
        """The vendor CA key from the factory material (StateError if unusable)."""
        try:
            cert = x509.load_der_x509_certificate(self.vendor_ca_cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise StateError(
                f"vendor CA certificate {self.vendor_ca_cert} is unusable: {exc}",
                "the thing's material needs identity/vendor-ca.crt.der (testbed.manufacture)",
            ) from exc
        public = cert.public_key()
        if not isinstance(public, keys.PublicKey):
            raise StateError(f"{self.vendor_ca_cert} does not hold a P-256 key")
        return public

    def precheck(self, version: str) -> str | None:
        """Step 1 without fetching: "unchanged", "downgrade", or None (go ahead)."""
        installed = self.store.installed().version
        if installed is not None and parse_version(version) == parse_version(installed):
            return "unchanged"
        if not newer(version, installed):
            return Refusal.DOWNGRADE.value
        return None

    async def update(self, version: str, image: str, timeout: float) -> UpdateResult:
        """Steps 1-7 and the install; never raises for a refusal (StateError for the volume)."""
        started = time.monotonic()
        before = self.store.installed().version
        result = UpdateResult("refused", version, image, before, before)
        try:
            if (early := self.precheck(version)) == "unchanged":
                result.outcome = "unchanged"
            elif early is not None:
                raise Refused(Refusal.DOWNGRADE, f"{version} is older than installed {before}")
            else:
                manifest, data = await self._fetch_verified(version, image, timeout, result)
                installed = self.store.install(manifest, data)
                result.outcome, result.firmware = "updated", installed.version
        except Refused as refused:
            result.reason, result.detail = refused.reason.value, refused.detail
        result.duration_s = time.monotonic() - started
        return result

    async def _fetch_verified(
        self, version: str, image: str, timeout: float, result: UpdateResult
    ) -> tuple[Manifest, bytes]:
        deadline = time.monotonic() + timeout
        coap = await create_context(loggername="firmware")
        try:
            raw = await self._get(coap, image, api.MANIFEST, MAX_MANIFEST, deadline, result)
            manifest = self._check_manifest(raw, version)
            data = await self._get(coap, image, api.IMAGE, manifest.size, deadline, result)
        finally:
            await coap.shutdown()
        if len(data) != manifest.size or hashlib.sha256(data).digest() != manifest.digest:
            raise Refused(
                Refusal.DIGEST_MISMATCH,
                f"image {image}: {len(data)} bytes, SHA-256 {hashlib.sha256(data).hexdigest()[:16]}"
                f"..., the manifest says {manifest.size} bytes, {manifest.digest.hex()[:16]}...",
            )
        return manifest, data

    async def _get(
        self,
        coap: Any,
        image: str,
        part: str,
        limit: int,
        deadline: float,
        result: UpdateResult,
    ) -> bytes:
        uri = uri_of(self.cloud_uri, api.release_path(self.vendor, self.model, image, part))
        try:
            return await get_blockwise(
                coap,
                uri,
                limit=limit,
                block_size=self.block_size,
                deadline=deadline,
                transfer=result.transfer,
            )
        except FetchError as exc:
            raise Refused(Refusal.UNAVAILABLE, str(exc)) from exc

    def _check_manifest(self, raw: bytes, version: str) -> Manifest:
        try:
            manifest = verify_manifest(raw, self.vendor_key())
        except ManifestSignatureError as exc:
            raise Refused(Refusal.BAD_SIGNATURE, exc.message) from exc
        except PkiError as exc:
            raise Refused(Refusal.BAD_MANIFEST, exc.message) from exc
        if (manifest.vendor, manifest.model) != (self.vendor, self.model):
            raise Refused(
                Refusal.WRONG_MODEL,
                f"release for {manifest.vendor}/{manifest.model},"
                f" this is {self.vendor}/{self.model}",
            )
        installed = self.store.installed().version
        if not newer(manifest.version, installed):
            raise Refused(
                Refusal.DOWNGRADE, f"signed version {manifest.version}, installed {installed}"
            )
        if parse_version(manifest.version) != parse_version(version):
            raise Refused(
                Refusal.VERSION_MISMATCH, f"asked for {version}, signed {manifest.version}"
            )
        return manifest
