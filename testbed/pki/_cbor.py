"""Deterministic CBOR: one encoding per value, and a decoder that accepts only that encoding.

Signatures in this package cover CBOR bytes, and hashes of CBOR bytes link voucher entries, so
the bytes must be reproducible and a decoder must not accept a second spelling of the same value
(non-minimal integers, indefinite lengths, duplicate map keys, trailing bytes). Rather than
validating each rule, ``loads`` re-encodes what it decoded and demands the identical bytes.

Ordering note: cbor2's ``canonical=True`` sorts map keys length-first (RFC 7049 Section 3.9);
RFC 8949 Section 4.2.1 sorts them bytewise. The two agree whenever all keys of a map encode to
the same length, which holds for every map in this package (integer keys -24..23, one byte).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cbor2

from testbed.errors import PkiError

# Every structure this package decodes is small; a bound keeps a hostile input cheap to reject.
MAX_INPUT = 64 * 1024


def dumps(value: object) -> bytes:
    """The deterministic encoding of ``value``."""
    return cbor2.dumps(value, canonical=True)


def loads(data: bytes, what: str) -> Any:
    """Decode ``data`` and insist that it is the deterministic encoding of its value.

    ``what`` names the structure in the error ("voucher link 2", "CCS") so that the message
    says which input was malformed.
    """
    if len(data) > MAX_INPUT:
        raise PkiError(f"{what}: {len(data)} bytes is more than the {MAX_INPUT} allowed")
    try:
        value = cbor2.loads(data, allow_indefinite=False, allow_duplicate_keys=False)
    except (cbor2.CBORError, ValueError, TypeError, RecursionError) as exc:
        raise PkiError(
            f"{what}: not valid CBOR ({exc})", "the data is truncated or corrupt"
        ) from exc
    try:
        canonical = dumps(value)
    except (cbor2.CBORError, ValueError, TypeError) as exc:
        raise PkiError(f"{what}: holds values this package never encodes ({exc})") from exc
    if canonical != data:
        raise PkiError(
            f"{what}: not in deterministic CBOR encoding (trailing bytes or a second spelling)",
            "the data was altered after it was produced",
        )
    return value


def as_map(value: object, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise PkiError(f"{what}: expected a CBOR map, got {type(value).__name__}")
    return value


def as_array(value: object, what: str) -> Sequence[Any]:
    # bytes and str are Sequences too; a CBOR array decodes to list or tuple only.
    if not isinstance(value, list | tuple):
        raise PkiError(f"{what}: expected a CBOR array, got {type(value).__name__}")
    return value


def field(m: Mapping[Any, Any], key: int | str, kind: type, what: str) -> Any:
    """``m[key]``, which must exist and be of ``kind`` (bool is not accepted as int)."""
    if key not in m:
        raise PkiError(f"{what}: field {key!r} is missing")
    value = m[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PkiError(f"{what}: field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value
