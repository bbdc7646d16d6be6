"""Hostile bytes: every parser and verifier fails with PkiError and nothing else."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.errors import PkiError
from testbed.pki import (
    Ccs,
    DeviceIdentity,
    Domain,
    Vendor,
    Voucher,
    cose,
    extend_voucher,
    issue_voucher,
    keys,
    verify_voucher_chain,
)
from testbed.pki.der import HardwareModuleName


@pytest.fixture(scope="module")
def chain(vendor: Vendor, device: DeviceIdentity, domain: Domain, next_domain: Domain) -> Voucher:
    v = issue_voucher(vendor, device, domain.owner_public_key)
    v = extend_voucher(v, domain.owner_key, next_domain.owner_public_key)
    return extend_voucher(v, next_domain.owner_key, keys.generate().public_key())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_breaks_the_chain(
    data: st.DataObject, chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    index = data.draw(st.integers(0, len(chain.links) - 1), label="link")
    link = bytearray(chain.links[index])
    position = data.draw(st.integers(0, len(link) - 1), label="byte")
    link[position] ^= data.draw(st.integers(1, 255), label="xor")
    links = list(chain.links)
    links[index] = bytes(link)
    with pytest.raises(PkiError, match=rf"voucher link {index} "):
        verify_voucher_chain(Voucher(tuple(links)), vendor.public_key, "SN-0001", device.public_key)


@settings(deadline=None)
@given(cut=st.integers(0, 600))
def test_any_truncation_of_the_serialized_chain_fails_cleanly(chain: Voucher, cut: int) -> None:
    data = chain.to_bytes()
    with pytest.raises(PkiError):
        Voucher.from_bytes(data[: min(cut, len(data) - 1)])


@given(data=st.binary(max_size=400))
def test_parsers_raise_only_pki_error(data: bytes) -> None:
    for parse in (Voucher.from_bytes, Ccs.from_bytes, HardwareModuleName.from_der):
        with contextlib.suppress(PkiError):
            parse(data)


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.text(max_size=20)
    | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.integers(-30, 30) | st.text(max_size=3), inner, max_size=9)
    ),
    max_leaves=30,
)
# Maps shaped almost like the real ones, so that parsing gets past the first checks.
voucher_like = st.dictionaries(st.integers(0, 9), cbor_values, min_size=4, max_size=9)


@settings(deadline=None)
@given(value=cbor_values | voucher_like)
def test_well_formed_cbor_of_the_wrong_shape_raises_only_pki_error(
    value: object, vendor: Vendor, device: DeviceIdentity
) -> None:
    data = cbor2.dumps(value, canonical=True)
    with contextlib.suppress(PkiError):
        Ccs.from_bytes(data)
    # The same value as a voucher link payload, correctly signed by the vendor.
    link = cose.sign(data, vendor.ca.key)
    with pytest.raises(PkiError, match="voucher link 0"):
        verify_voucher_chain(Voucher((link,)), vendor.public_key, "SN-0001", device.public_key)
