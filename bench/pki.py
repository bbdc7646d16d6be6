"""Issuance and verification rates of the testbed PKI (one core, this machine).

    python bench/pki.py [--seconds 1.0]

Each operation runs repeatedly for about ``--seconds`` and reports operations per second,
followed by the sizes of what it produced (they feed handshake and storage budgets).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from itertools import count

from cryptography.hazmat.primitives import serialization

from testbed.pki import (
    Voucher,
    build_crl,
    extend_voucher,
    is_revoked,
    issue_ldevid,
    issue_voucher,
    make_csr,
    manufacture,
    new_domain,
    new_vendor,
    verify_device_cert,
    verify_voucher_chain,
)


def rate(label: str, seconds: float, op: Callable[[], object]) -> None:
    op()  # warm-up (imports, caches)
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        op()
        done += 1
        if done % 16 == 0 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {done / elapsed:>10,.0f} /s  ({1e3 * elapsed / done:.3f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    seconds = parser.parse_args().seconds

    vendor = new_vendor("acme")
    domain = new_domain("hvac")
    nxt = new_domain("owner")
    serials = count(1)
    device = manufacture(vendor, "SN-0", "thermostat")
    csr = make_csr(device)
    ldevid = issue_ldevid(domain, csr, 1, expected_serial="SN-0")
    voucher1 = issue_voucher(vendor, device, domain.owner_public_key)
    voucher3 = extend_voucher(
        extend_voucher(voucher1, domain.owner_key, nxt.owner_public_key),
        nxt.owner_key,
        domain.owner_public_key,
    )
    crl = build_crl(domain.ca, range(2, 1002), crl_number=1)

    print("issuance")
    rate("new_vendor (P-256 root CA)", seconds, lambda: new_vendor("v"))
    rate(
        "manufacture (key + IDevID + CCS)",
        seconds,
        lambda: manufacture(vendor, f"SN-{next(serials)}", "m"),
    )
    rate("make_csr", seconds, lambda: make_csr(device))
    rate(
        "issue_ldevid (CSR check + sign)",
        seconds,
        lambda: issue_ldevid(domain, csr, next(serials), expected_serial="SN-0"),
    )
    rate("issue_voucher", seconds, lambda: issue_voucher(vendor, device, domain.owner_public_key))
    rate(
        "extend_voucher",
        seconds,
        lambda: extend_voucher(voucher1, domain.owner_key, nxt.owner_public_key),
    )
    rate("build_crl (1,000 entries)", seconds, lambda: build_crl(domain.ca, range(2, 1002), 1))

    print("verification")
    rate(
        "verify_device_cert (IDevID -> vendor CA)",
        seconds,
        lambda: verify_device_cert(device.idevid, vendor.ca_cert),
    )
    rate(
        "verify_device_cert (LDevID + 1,000-entry CRL)",
        seconds,
        lambda: verify_device_cert(ldevid, domain.ca_cert, crl=crl),
    )
    rate("is_revoked (1,000-entry CRL)", seconds, lambda: is_revoked(ldevid, crl))
    for chain in (voucher1, voucher3):

        def verify_chain(chain: Voucher = chain) -> object:
            return verify_voucher_chain(chain, vendor.public_key, "SN-0", device.public_key)

        links = f"{len(chain)} link{'s' if len(chain) > 1 else ''}"
        rate(f"verify_voucher_chain ({links})", seconds, verify_chain)

    der = serialization.Encoding.DER
    print("sizes")
    print(f"{'IDevID (DER)':<44} {len(device.idevid.public_bytes(der)):>10} B")
    print(f"{'LDevID (DER)':<44} {len(ldevid.public_bytes(der)):>10} B")
    print(f"{'vendor CA certificate (DER)':<44} {len(vendor.ca_cert.public_bytes(der)):>10} B")
    print(f"{'CCS (kid of ' + str(len(device.kid)) + ' B)':<44} {len(device.ccs.to_bytes()):>10} B")
    print(f"{'CSR (DER)':<44} {len(csr.public_bytes(der)):>10} B")
    print(f"{'voucher, 1 link':<44} {len(voucher1.to_bytes()):>10} B")
    print(f"{'voucher, 3 links':<44} {len(voucher3.to_bytes()):>10} B")
    print(f"{'CRL, 1 entry':<44} {len(build_crl(domain.ca, [2], 1).public_bytes(der)):>10} B")
    print(f"{'CRL, 1,000 entries':<44} {len(crl.public_bytes(der)):>10} B")


if __name__ == "__main__":
    main()
