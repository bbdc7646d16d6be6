"""Which trust center a thing answers to: the factory's sale, or a later ownership transfer.

At manufacture the thing is sold to one domain: attributes ``domain`` and ``trust-center-uri``
and the material file ``trust-center.ccs.cbor``. A transfer (control action ``transfer``, only
from ``decommissioned``) points it at the next owner's trust center and keeps that on the state
volume, so that it holds from then on, across restarts, whatever node.json says:

    owner.json                {schema, domain, trust_center_uri, ccs, transferred_at}
    owner/trust-center.ccs.cbor    the new owner's trust center credential

The credential file is written before the index, so a crash leaves the previous owner in force
(or a complete new one), never half of each.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testbed.contracts.node_config import Attr
from testbed.errors import PkiError
from testbed.node import material
from testbed.node.coap.credentials import Credential
from testbed.node.coap.errors import CredentialError
from testbed.node.errors import ActionError, StateError
from testbed.node.statefile import read_json, write_json_atomic
from testbed.pki import store as pki_store

INDEX = "owner.json"
CCS_FILE = "owner/trust-center.ccs.cbor"
_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Owner:
    domain: str | None
    trust_center_uri: str | None  # None: the thing has no trust center to bootstrap with
    trust_center_ccs: Path
    transferred_at: float | None = None  # None: the owner the thing was sold to

    def same_transfer(self, domain: str, uri: str, ccs: bytes) -> bool:
        try:
            held = self.trust_center_ccs.read_bytes()
        except OSError:
            return False
        return (self.domain, self.trust_center_uri, held) == (domain, uri, ccs)


class OwnerStore:
    def __init__(self, state_dir: Path, material_root: Path, attributes: Mapping[str, str]) -> None:
        self.root = state_dir
        self.material_root = material_root
        self.attributes = attributes

    def current(self) -> Owner:
        data = read_json(self.root / INDEX)
        if data is None:
            return Owner(
                domain=self.attributes.get(Attr.DOMAIN) or None,
                trust_center_uri=self.attributes.get(Attr.TRUST_CENTER_URI) or None,
                trust_center_ccs=material.path(material.TRUST_CENTER_CCS, self.material_root),
            )
        try:
            return Owner(
                domain=str(data["domain"]),
                trust_center_uri=str(data["trust_center_uri"]),
                trust_center_ccs=self.root / str(data["ccs"]),
                transferred_at=float(data["transferred_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                f"{self.root / INDEX} is not a valid owner record: {exc!r}",
                "inspect it; transfer the thing again to replace it",
            ) from exc

    def transfer(self, domain: str, uri: str, ccs: bytes) -> Owner:
        try:
            pki_store.write_files(self.root, {CCS_FILE: ccs})
        except PkiError as exc:
            raise StateError(exc.message, exc.hint) from exc
        write_json_atomic(
            self.root / INDEX,
            {
                "schema": 1,
                "domain": domain,
                "trust_center_uri": uri,
                "ccs": CCS_FILE,
                "transferred_at": time.time(),
            },
        )
        return self.current()


def transfer_params(params: dict[str, Any]) -> tuple[str, str, bytes]:
    """(domain, trust center URI, CCS bytes) of a ``transfer`` request; ActionError if bad."""
    example = (
        '{"trust_center_uri": "coap://[fd00::10]:5683", "trust_center_ccs": "<base64>",'
        ' "domain": "lighting"}'
    )
    domain, uri, encoded = (
        params.get(k) for k in ("domain", "trust_center_uri", "trust_center_ccs")
    )
    if not (isinstance(domain, str) and isinstance(uri, str) and isinstance(encoded, str)):
        raise ActionError("transfer needs domain, trust_center_uri and trust_center_ccs", example)
    # The domain becomes a metric label and a log field: a plain name.
    if not _DOMAIN.fullmatch(domain):
        raise ActionError(f"domain {domain!r} must be 1-64 of A-Z a-z 0-9 . _ -", example)
    parts = urlsplit(uri)
    if parts.scheme != "coap" or not parts.hostname:
        raise ActionError(f"trust_center_uri {uri!r} is not coap://HOST[:PORT]", example)
    try:
        ccs = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ActionError("trust_center_ccs is not base64", example) from exc
    try:
        Credential.from_cbor(ccs)  # the thing must be able to authenticate its new owner
    except CredentialError as exc:
        raise ActionError(f"trust_center_ccs is not a usable CCS: {exc.message}") from exc
    return domain, uri, ccs
