# Copyright: the IoT security testbed authors. Apache-2.0.
from __future__ import annotations

DOCUMENTATION = r"""
name: device_record
short_description: A thing's device record from the run directory, base64
version_added: "0.1.0"
description:
  - Reads, on the controller, what a thing's owner received at sale - its ownership voucher
    chain, its IDevID certificate and its EDHOC credential - from
    C(RUN/pki/things/NAME/{voucher.cbor,idevid.crt.der,device.ccs.cbor}), and returns them as
    base64, ready for M(testbed.iot.trust_center).
  - The voucher file holds the current chain; an ownership transfer extends it in place.
  - The thing's private key in the same directory is never read.
options:
  _terms:
    description: Thing names (inventory hostnames).
    required: true
  run_dir:
    description: The run directory on the controller.
    type: path
    vars:
      - name: testbed_run_dir
"""

EXAMPLES = r"""
- name: Import the voucher at the owner's trust center
  testbed.iot.trust_center:
    serial: "{{ testbed_serial }}"
    voucher: "{{ record.voucher }}"
    idevid: "{{ record.idevid }}"
    ccs: "{{ record.ccs }}"
  vars:
    record: "{{ lookup('testbed.iot.device_record', inventory_hostname) }}"
"""

RETURN = r"""
_raw:
  description: One record per term.
  type: list
  elements: dict
  contains:
    voucher:
      description: Ownership voucher chain (CBOR), base64.
    idevid:
      description: IDevID certificate (DER), base64.
    ccs:
      description: EDHOC credential (CCS), base64.
    psk:
      description: The factory pre-shared key of a dtls-psk thing (16 bytes), base64; only
        for such things.
    voucher_links:
      description: Number of links in the voucher chain (1 + transfers).
"""

import base64  # noqa: E402
import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleError  # type: ignore[import-untyped]  # noqa: E402
from ansible.plugins.lookup import LookupBase  # type: ignore[import-untyped]  # noqa: E402

FILES = {"voucher": "voucher.cbor", "idevid": "idevid.crt.der", "ccs": "device.ccs.cbor"}
OPTIONAL_FILES = {"psk": "device.psk"}  # sold with the voucher of a dtls-psk thing


def read_record(run_dir: str, thing: str) -> dict[str, Any]:
    if not thing or "/" in thing or thing.startswith("."):
        raise AnsibleError(f"device_record: {thing!r} is not a thing name")
    directory = os.path.join(run_dir, "pki", "things", thing)
    record: dict[str, Any] = {}
    for key, name in FILES.items():
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise AnsibleError(
                f"device_record: cannot read {path}: {exc.strerror or exc}; "
                "is this the run directory of a running testbed?"
            ) from None
        record[key] = base64.b64encode(data).decode("ascii")
        if key == "voucher":
            record["voucher_links"] = _links(data)
    for key, name in OPTIONAL_FILES.items():
        path = os.path.join(directory, name)
        if os.path.exists(path):
            with open(path, "rb") as handle:
                record[key] = base64.b64encode(handle.read()).decode("ascii")
    return record


def _links(voucher: bytes) -> int:
    """Length of the CBOR array a voucher is (its first byte), without a CBOR library."""
    if not voucher:
        return 0
    head = voucher[0]
    if head >> 5 != 4:  # major type 4: array
        return 0
    info = head & 0x1F
    if info < 24:
        return info
    if info == 24 and len(voucher) > 1:
        return voucher[1]
    return 0


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        run_dir = self.get_option("run_dir")
        if not run_dir:
            raise AnsibleError(
                "device_record: no run directory; set run_dir or the variable testbed_run_dir "
                "(the inventory from `testbed inventory` sets it)"
            )
        return [read_record(str(run_dir), str(term)) for term in terms]
