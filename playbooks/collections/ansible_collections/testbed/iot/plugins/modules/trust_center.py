#!/usr/bin/python
# Copyright: the IoT security testbed authors. Apache-2.0.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: trust_center
short_description: Import or revoke a thing at an operator domain's trust center
version_added: "0.1.0"
description:
  - Manages the device registry of a testbed trust center (registrar) through its local control
    endpoint (HTTP on 127.0.0.1 inside the trust center's node).
  - V(imported) stores the thing's device record - its ownership voucher (which must end at
    this domain's owner key), its IDevID certificate and its EDHOC credential - so that the
    thing can bootstrap with this domain. The same record again changes nothing.
  - V(revoked) revokes the thing - its certificates go on the domain's CRL and the registry
    refuses it from then on. Revoking a revoked thing changes nothing.
  - Runs inside the node (C(community.docker.docker) connection, the node's Python); in the
    phases it is delegated from the thing's host to its owner's trust center.
  - A refusal by the trust center (a voucher that does not name its owner, an untrusted vendor,
    an unknown serial) fails the task with the trust center's message.
options:
  serial:
    description:
      - The thing's factory serial number (as in its IDevID). Required for V(revoked); checked
        against the record for V(imported).
    type: str
  state:
    description: What the trust center should hold for the thing.
    type: str
    choices: [imported, revoked]
    default: imported
  voucher:
    description: The ownership voucher chain (CBOR), base64. Required for V(imported).
    type: str
  idevid:
    description: The IDevID certificate (DER), base64. Required for V(imported).
    type: str
  ccs:
    description: The thing's EDHOC credential (CCS, CBOR), base64. Required for V(imported).
    type: str
  psk:
    description:
      - The factory pre-shared key of a C(dtls-psk) thing (16 bytes), base64, imported with
        its voucher. Omit for other things.
    type: str
  name:
    description:
      - The name the owner knows the thing by (its inventory hostname), bound to its serial for
        V(imported). The trust center refuses a name another thing holds, and refuses a thing
        that reports another name at enrollment.
    type: str
  reason:
    description: RFC 5280 revocation reason name for V(revoked).
    type: str
    default: cessationOfOperation
  timeout:
    description: Seconds to wait for the trust center's answer.
    type: float
    default: 30
extends_documentation_fragment:
  - testbed.iot.control
attributes:
  check_mode:
    support: full
    details: Lists the trust center's C(devices) and predicts the outcome; changes nothing.
  diff_mode:
    support: full
    details: The thing's registry state before and after.
seealso:
  - module: testbed.iot.thing
  - plugin: testbed.iot.device_record
    plugin_type: lookup
author:
  - IoT security testbed authors
"""

EXAMPLES = r"""
- name: The owner's trust center imports the thing's voucher (read on the controller)
  testbed.iot.trust_center:
    state: imported
    serial: "{{ testbed_serial }}"
    voucher: "{{ record.voucher }}"
    idevid: "{{ record.idevid }}"
    ccs: "{{ record.ccs }}"
  vars:
    record: "{{ lookup('testbed.iot.device_record', inventory_hostname) }}"
  delegate_to: "{{ testbed_trust_centers[testbed_domain] }}"

- name: Revoke a decommissioned thing
  testbed.iot.trust_center:
    state: revoked
    serial: "{{ testbed_serial }}"
    reason: cessationOfOperation
  delegate_to: tc-hvac
"""

RETURN = r"""
device:
  description: The registry's entry for the thing after the task (predicted in check mode).
  returned: always
  type: dict
  sample: {serial: "ACME-1A2B3C4D5E", vendor: acme, model: thermo-100, state: imported}
result:
  description: The trust center's answer to the action (absent when nothing was done).
  returned: when an action ran
  type: dict
action:
  description: The control action run or, in check mode, that would run.
  returned: when there was something to do
  type: str
  sample: import-device
"""

import base64  # noqa: E402
import binascii  # noqa: E402
import hashlib  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped]  # noqa: E402
from ansible_collections.testbed.iot.plugins.module_utils.control import (  # noqa: E402
    ControlClient,
    ControlError,
    changed_of,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "serial": {"type": "str"},
    "state": {"type": "str", "choices": ["imported", "revoked"], "default": "imported"},
    "voucher": {"type": "str"},
    "idevid": {"type": "str"},
    "ccs": {"type": "str"},
    "psk": {"type": "str", "no_log": True},
    "name": {"type": "str"},
    "reason": {"type": "str", "default": "cessationOfOperation"},
    "control_port": {"type": "int"},
    "control_host": {"type": "str", "default": "127.0.0.1"},
    "timeout": {"type": "float", "default": 30.0},
}
REQUIRED_IF = [
    ("state", "imported", ("voucher", "idevid", "ccs")),
    ("state", "revoked", ("serial",)),
]


class ModuleFailure(Exception):
    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


def devices_by_serial(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``devices`` answer as {serial: entry}; accepts a list or a mapping of entries."""
    entries = answer.get("devices", answer)
    out: dict[str, dict[str, Any]] = {}
    if isinstance(entries, dict):
        for serial, entry in entries.items():
            if isinstance(entry, dict):
                out[str(serial)] = {"serial": serial, **entry}
    elif isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and entry.get("serial"):
                out[str(entry["serial"])] = entry
    return out


def _decode(name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ModuleFailure(f"{name} is not base64") from None


def _same_record(entry: dict[str, Any], voucher: bytes) -> bool | None:
    """Whether the registry holds this very voucher: True, False, or None (cannot tell)."""
    for key in ("voucher_sha256", "voucher_digest"):
        if entry.get(key):
            return str(entry[key]).lower() == hashlib.sha256(voucher).hexdigest()
    if entry.get("record") is False:
        return False  # the registry knows the serial but holds no device record
    links = entry.get("voucher_links")
    if isinstance(links, int) and links != _array_length(voucher):
        return False  # a chain of another length: another ownership path
    return None


def _array_length(cbor: bytes) -> int | None:
    """Length of the CBOR array a voucher is, from its first bytes (no CBOR library)."""
    if not cbor or cbor[0] >> 5 != 4:
        return None
    info = cbor[0] & 0x1F
    if info < 24:
        return info
    if info == 24 and len(cbor) > 1:
        return cbor[1]
    return None


def predict(
    params: dict[str, Any], devices: dict[str, dict[str, Any]], check_mode: bool = False
) -> tuple[str | None, dict[str, Any]]:
    """(action to run or None, predicted entry) for the desired state."""
    serial = params.get("serial")
    entry = devices.get(serial, {}) if serial else {}
    if params["state"] == "revoked":
        if not entry:
            raise ModuleFailure(
                f"the trust center has no thing with serial {serial!r}",
                hint="import its device record first (state=imported)",
            )
        if entry.get("state") == "revoked":
            return None, entry
        return "revoke", {**entry, "state": "revoked"}
    voucher = _decode("voucher", params["voucher"])
    _decode("idevid", params["idevid"])
    _decode("ccs", params["ccs"])
    same = _same_record(entry, voucher) if entry else False
    if same is True or (same is None and check_mode):
        # None: the listing cannot tell two chains of one length apart; check mode predicts
        # the likely "same", a real run asks the trust center, whose answer decides.
        return None, entry
    state = entry.get("state")
    if state == "revoked":
        # Revocation is final at this owner: a new record for the thing is refused.
        raise ModuleFailure(
            f"{serial} is revoked at this trust center; revocation is final",
            hint="a thing that returns to this owner needs a new identity from its vendor",
        )
    after = state or "imported"
    return "import-device", {**entry, "serial": serial, "state": after}


def _listing(client: ControlClient) -> dict[str, dict[str, Any]] | None:
    """The registry's devices; None when the trust center has no ``devices`` action."""
    try:
        return devices_by_serial(client.action("devices"))
    except ControlError as exc:
        if exc.status == 404:
            return None
        raise ModuleFailure(f"cannot list the trust center's devices: {exc.describe()}") from None


def changed_by(action: str, answer: dict[str, Any]) -> bool:
    if "changed" in answer:
        return bool(answer["changed"])
    if action == "revoke" and "previous_state" in answer:
        return bool(answer["previous_state"] != "revoked")
    return changed_of(answer)


def run(
    params: dict[str, Any], client: ControlClient, check_mode: bool = False, diff: bool = False
) -> dict[str, Any]:
    devices = _listing(client)
    serial = params.get("serial") or ""
    result: dict[str, Any] = {"changed": False}
    if devices is None:
        # No listing to predict from: the action itself tells what it changed.
        before: dict[str, Any] = {}
        action: str | None = "revoke" if params["state"] == "revoked" else "import-device"
        expected: dict[str, Any] = {"serial": serial, "state": params["state"]}
        if params["state"] == "imported":
            for name in ("voucher", "idevid", "ccs"):
                _decode(name, params[name])
        if check_mode:
            result["warnings"] = ["the trust center cannot list its devices: assuming a change"]
    else:
        before = devices.get(serial, {})
        action, expected = predict(params, devices, check_mode)
    result["device"] = before
    if action is not None:
        result["action"] = action
    if action is None or check_mode:
        result["changed"] = action is not None
        result["device"] = expected
    else:
        if action == "revoke":
            call = {"serial": params["serial"], "reason": params["reason"]}
        else:
            call = {k: params[k] for k in ("voucher", "idevid", "ccs")}
            if params.get("psk"):
                call["psk"] = params["psk"]
            for optional in ("serial", "name"):
                if params.get(optional):
                    call[optional] = params[optional]
        try:
            answer = client.action(action, call)
        except ControlError as exc:
            raise ModuleFailure(
                exc.describe(), action=action, http_status=exc.status, hint=exc.hint
            ) from None
        result["result"] = answer
        result["changed"] = changed_by(action, answer)
        serial = serial or str(answer.get("serial") or "")
        after = _listing(client) if devices is not None else None
        entry = (after or {}).get(serial)
        result["device"] = entry or {**before, "serial": serial, "state": answer.get("state")}
    if diff:
        result["diff"] = {
            "before_header": "registry entry (before)",
            "after_header": "registry entry (after)" + (" - predicted" if check_mode else ""),
            "before": {"state": before.get("state")},
            "after": {"state": result["device"].get("state")},
        }
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True
    )
    client = ControlClient(
        host=module.params["control_host"],
        port=module.params["control_port"],
        timeout=float(module.params["timeout"]),
    )
    try:
        result = run(module.params, client, module.check_mode, module._diff)
    except ModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
