"""What bootstrapping leaves on the thing's state volume, and reading it back after a restart.

    state.json             lifecycle record (testbed.node.lifecycle)
    operational.key.pem    the operational P-256 key: created at the first attempt, reused by
                           every retry (a CSR per attempt, one key), certified by the LDevID
    operational.next.key.pem  the next key during a rekey (renewal): certified by the renewed
                           LDevID, it replaces operational.key.pem when the renewal is saved
    ldevid.crt.der         the LDevID the trust center issued
    oscore/<dir>/          one aiocoap context directory per granted OSCORE context (contexts)
    operational.json       the index: which LDevID and context directories are current; written
                           last, so a crash mid-way leaves the previous complete set in force
    bootstrap.json         the last bootstrap result (costs, outcome; no key material)

Every file is mode 0600 and replaced atomically (temp file, fsync, rename). ``wipe`` removes
all of the operational identity (decommissioning, re-bootstrapping); the factory identity is
not on the volume and so never at risk.

A renewal replaces LDevID, then key, then index; a crash between two of them leaves an LDevID
or key that does not match the index's contexts. Nothing operational uses key or LDevID once
enrolled (OSCORE runs on the granted contexts), and the next rekey or re-bootstrap replaces
all of it, so this window is accepted rather than versioning every file.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.errors import PkiError
from testbed.node.enrollment_api import is_backend_purpose
from testbed.node.errors import StateError
from testbed.node.statefile import read_json, write_json_atomic
from testbed.node.thing import contexts
from testbed.node.thing.contexts import Grant
from testbed.pki import store as pki_store

OPERATIONAL_KEY = "operational.key.pem"
NEXT_KEY = "operational.next.key.pem"
LDEVID = "ldevid.crt.der"
OSCORE_DIR = "oscore"
INDEX = "operational.json"
LAST_RESULT = "bootstrap.json"


@dataclass(frozen=True)
class Operational:
    """The thing's operational identity as the index names it."""

    ldevid: x509.Certificate
    contexts: dict[str, Path]  # purpose -> context directory
    enrolled_at: float


class ThingStore:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir

    # -- the operational key ---------------------------------------------------------------

    def operational_key(self) -> ec.EllipticCurvePrivateKey:
        """The key to certify: loaded if present, else generated and written (0600) first."""
        return self._key(OPERATIONAL_KEY)

    def next_key(self) -> ec.EllipticCurvePrivateKey:
        """The key a renewal certifies; a renewal that crashed left it, and it is reused (the
        trust center may have certified it already: no harm, the new LDevID supersedes)."""
        return self._key(NEXT_KEY)

    def discard_next_key(self) -> None:
        (self.root / NEXT_KEY).unlink(missing_ok=True)

    def _key(self, name: str) -> ec.EllipticCurvePrivateKey:
        path = self.root / name
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError) as exc:
                raise StateError(
                    f"{path} is unreadable: {exc}",
                    "inspect it; delete it only if a new operational key is intended",
                ) from exc
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise StateError(f"{path} does not hold an EC key")
            return key
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write({name: pem})
        return key

    # -- enrollment -------------------------------------------------------------------------

    def save_enrollment(
        self, ldevid_der: bytes, grants: tuple[Grant, ...], *, renewed_key: bool = False
    ) -> Operational:
        """Persist LDevID and contexts, then switch the index to them.

        ``renewed_key``: the LDevID certifies ``next_key``, which becomes the operational key.
        """
        current = self.load_operational()
        oscore_root = self.root / OSCORE_DIR
        dirs: dict[str, Path] = {}
        for grant in grants:
            old = None if current is None else current.contexts.get(grant.purpose)
            # The same grant again (a repeated bootstrap): keep its directory, whose sequence
            # number and replay window must not start over.
            if old is not None and contexts.holds(old, grant):
                dirs[grant.purpose] = old
            else:
                dirs[grant.purpose] = contexts.write_context(oscore_root, grant)
        self._write({LDEVID: ldevid_der})
        if renewed_key:
            os.replace(self.root / NEXT_KEY, self.root / OPERATIONAL_KEY)
        enrolled_at = time.time()
        write_json_atomic(
            self.root / INDEX,
            {
                "schema": 1,
                "ldevid": LDEVID,
                "contexts": {p: str(d.relative_to(self.root)) for p, d in dirs.items()},
                "enrolled_at": enrolled_at,
            },
        )
        contexts.remove_except(oscore_root, set(dirs.values()))
        return Operational(x509.load_der_x509_certificate(ldevid_der), dirs, enrolled_at)

    def load_operational(self) -> Operational | None:
        data = read_json(self.root / INDEX)
        if data is None:
            return None
        try:
            ldevid = x509.load_der_x509_certificate((self.root / str(data["ldevid"])).read_bytes())
            dirs = {str(p): self.root / str(d) for p, d in dict(data["contexts"]).items()}
            return Operational(ldevid, dirs, float(data["enrolled_at"]))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise StateError(
                f"{self.root / INDEX} names operational material that is unusable: {exc!r}",
                "re-bootstrap the thing (action bootstrap) or inspect the state volume",
            ) from exc

    def generation(self, operational: Operational | None, purpose: str) -> int | None:
        """The generation of ``operational``'s context of ``purpose`` (None: there is none)."""
        directory = None if operational is None else operational.contexts.get(purpose)
        return None if directory is None else contexts.generation_of(directory)

    def backend_generation(self, operational: Operational | None) -> int | None:
        """The generation of the backend contexts (one per backend, all of one generation)."""
        for purpose in sorted(operational.contexts if operational else {}):
            if is_backend_purpose(purpose):
                return self.generation(operational, purpose)
        return None

    def has_operational_material(self) -> bool:
        return any(
            (self.root / name).exists()
            for name in (OPERATIONAL_KEY, NEXT_KEY, LDEVID, INDEX, OSCORE_DIR)
        )

    def wipe(self) -> bool:
        """Delete the operational identity: key(s), LDevID, contexts, index. Index first, so
        that a crash mid-way never leaves an index naming missing files. True if anything was
        there."""
        existed = self.has_operational_material()
        try:
            for name in (INDEX, LDEVID, OPERATIONAL_KEY, NEXT_KEY):
                (self.root / name).unlink(missing_ok=True)
            shutil.rmtree(self.root / OSCORE_DIR, ignore_errors=True)
        except OSError as exc:
            raise StateError(
                f"cannot wipe the operational identity in {self.root}: {exc}",
                "check that the state volume is mounted read-write",
            ) from exc
        if (self.root / OSCORE_DIR).exists():
            raise StateError(f"{self.root / OSCORE_DIR} could not be removed")
        return existed

    # -- the last result ----------------------------------------------------------------------

    def save_result(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.root / LAST_RESULT, result)

    def load_result(self) -> dict[str, Any] | None:
        return read_json(self.root / LAST_RESULT)

    def _write(self, files: dict[str, bytes]) -> None:
        try:
            # pki's writer: atomic, 0600, and it refuses to replace a different private key.
            pki_store.write_files(self.root, files)
        except PkiError as exc:
            raise StateError(exc.message, exc.hint) from exc
