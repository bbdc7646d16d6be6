#!/usr/bin/python
# Copyright: the IoT security testbed authors. Apache-2.0.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: thing
short_description: Drive an emulated IoT thing through its lifecycle
version_added: "0.1.0"
description:
  - Moves a testbed thing to a desired lifecycle state, firmware version and owner, through the
    thing's local control endpoint (HTTP on 127.0.0.1 inside the node).
  - Runs inside the node, so use it with the C(community.docker.docker) connection and the
    node's Python (C(ansible_python_interpreter=/opt/testbed/bin/python3)); the inventory that
    C(testbed inventory) writes sets both.
  - Declarative and idempotent; it asks the thing for its C(status) first and acts only where
    the thing differs from what is asked. It reports C(changed) only when the thing says it
    changed.
  - "Order of work when several options are given: O(transfer_to), O(state), O(firmware),
    O(rekey), O(rebootstrap)."
  - A refusal by the thing fails the task with the thing's own words - an illegal lifecycle
    transition (HTTP 409), a firmware image it refused (bad signature, digest mismatch,
    downgrade, wrong model), a key renewal that failed, or a bootstrap that ended C(failed) or
    did not finish within O(timeout).
  - Without any option it only reads the thing's status (like a facts module).
options:
  state:
    description:
      - V(installed) the thing is placed in its PAN (a V(manufactured) thing is moved to
        V(installed)); a thing that is further along (bootstrapping, operational, maintenance,
        failed) is left as it is. A decommissioned thing fails this; transfer it to an owner.
      - V(operational) the thing is commissioned with its owner's trust center (the
        C(commission) action bootstraps it and waits up to O(timeout) seconds).
      - V(decommissioned) the thing wipes its operational keys and keeps its factory identity.
        Revoke it at its trust center too (M(testbed.iot.trust_center)).
    type: str
    choices: [installed, operational, decommissioned]
  firmware:
    description:
      - Firmware version the thing must run. When it runs another one, the thing fetches the
        vendor-signed image of that version, verifies it and applies it, passing through
        C(maintenance). Older versions (downgrades) and images that fail verification are
        refused by the thing.
    type: str
  firmware_image:
    description:
      - Image reference handed to the thing unchanged with O(firmware) (a vendor-cloud path, or
        an image for a refusal experiment). By default the thing asks its vendor cloud.
    type: str
  rekey:
    description:
      - Rotate the operational keys (LDevID renewal and fresh OSCORE contexts); the old ones
        stop working. An action, not a state - it rotates every time it is asked to.
    type: bool
    default: false
  rebootstrap:
    description:
      - Discard the operational credentials and bootstrap again with the current owner.
        An action, not a state - it runs every time it is asked to.
    type: bool
    default: false
  transfer_to:
    description:
      - The next owner, for re-commissioning. The thing (decommissioned by its old owner)
        adopts the new owner's trust center. Nothing happens when it already has that owner.
      - The new owner's trust center must have imported the voucher that the old owner
        extended to it (M(testbed.iot.trust_center), state V(imported)).
    type: dict
    suboptions:
      domain:
        description: Operator domain that becomes the owner.
        type: str
        required: true
      trust_center_uri:
        description: CoAP URI of that domain's trust center, e.g. C(coap://[fd00::5]:5683).
        type: str
        required: true
      trust_center_ccs:
        description: The trust center's EDHOC credential (CCS), base64.
        type: str
        required: true
  older_than:
    description:
      - Unix time. With it, O(rekey) and O(rebootstrap) act only on a thing whose credentials
        were enrolled before that time, which makes them idempotent within a phase (the
        playbooks pass the phase's start, so re-running a phase completes what is missing).
    type: float
  timeout:
    description: Seconds the thing may take to commission, re-bootstrap, rekey or update.
    type: float
    default: 120
extends_documentation_fragment:
  - testbed.iot.control
attributes:
  check_mode:
    support: full
    details: Asks the thing for its status and predicts the outcome; changes nothing.
  diff_mode:
    support: full
    details: Lifecycle state, firmware, owner domain and key generation before and after.
notes:
  - Check mode also predicts refusals from the lifecycle table and reports them as warnings;
    the thing's own answer is authoritative.
seealso:
  - module: testbed.iot.trust_center
author:
  - IoT security testbed authors
"""

EXAMPLES = r"""
- name: Commission the thing with its owner's trust center
  testbed.iot.thing:
    state: operational
    timeout: 90

- name: Update the firmware to 1.2.0 (refused when older or tampered)
  testbed.iot.thing:
    firmware: "1.2.0"

- name: Rotate the operational keys
  testbed.iot.thing:
    rekey: true

- name: Take the thing out of service (wipe operational keys)
  testbed.iot.thing:
    state: decommissioned

- name: Hand the thing to the lighting contractor and commission it there
  testbed.iot.thing:
    transfer_to:
      domain: lighting
      trust_center_uri: "coap://[fd8c:1::21]:5683"
      trust_center_ccs: "{{ new_owner_ccs_b64 }}"
    state: operational

- name: Read the status only
  testbed.iot.thing:
  register: thing
"""

RETURN = r"""
lifecycle:
  description: Lifecycle state after the task (predicted in check mode).
  returned: always
  type: str
  sample: operational
firmware:
  description: Firmware version after the task (predicted in check mode).
  returned: always
  type: str
  sample: "1.1.0"
domain:
  description: Owner domain after the task (predicted in check mode).
  returned: always
  type: str
  sample: hvac
status:
  description: The thing's C(status) after the task (predicted in check mode).
  returned: always
  type: dict
  sample:
    lifecycle: operational
    reason: null
    firmware: "1.1.0"
    domain: hvac
    trust_center_uri: "coap://[fd8c:1::11]:5683"
    ldevid_serial: "5a1e..."
    generation: 2
    group_generation: 1
before:
  description: The thing's C(status) before the task.
  returned: always
  type: dict
actions:
  description: Control actions run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: dict
  sample:
    - action: firmware-update
      params: {version: "1.2.0"}
      changed: true
refusals:
  description: Check mode only - actions the lifecycle table predicts the thing would refuse.
  returned: when check mode predicts a refusal
  type: list
  elements: str
"""

import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped]  # noqa: E402
from ansible_collections.testbed.iot.plugins.module_utils.control import (  # noqa: E402
    ControlClient,
    ControlError,
    changed_of,
)

# The module runs inside the node with the node image's Python, which has the testbed package:
# lifecycle states and the states each operation starts from come from the node's own table,
# so check-mode predictions cannot drift from what the thing enforces.
from testbed.node.lifecycle import (  # noqa: E402
    COMMISSIONABLE,
    MAINTAINABLE,
    REBOOTSTRAPPABLE,
    TRANSFERABLE,
    LifecycleState,
)

S = LifecycleState
DIFF_KEYS = ("lifecycle", "firmware", "domain", "generation")
BOOTSTRAPPING_ACTIONS = ("commission", "rebootstrap")
# The states a play may ask for (option state); the others are passed through, not asked for.
STATE_CHOICES = (S.INSTALLED, S.OPERATIONAL, S.DECOMMISSIONED)

ARGUMENT_SPEC: dict[str, Any] = {
    "state": {"type": "str", "choices": [s.value for s in STATE_CHOICES]},
    "firmware": {"type": "str"},
    "firmware_image": {"type": "str"},
    "rekey": {"type": "bool", "default": False},
    "rebootstrap": {"type": "bool", "default": False},
    "transfer_to": {
        "type": "dict",
        "options": {
            "domain": {"type": "str", "required": True},
            "trust_center_uri": {"type": "str", "required": True},
            "trust_center_ccs": {"type": "str", "required": True, "no_log": False},
        },
    },
    "older_than": {"type": "float"},
    "timeout": {"type": "float", "default": 120.0},
    "control_port": {"type": "int"},
    "control_host": {"type": "str", "default": "127.0.0.1"},
}


class Step:
    """One control action the module will run, and what it predicts it does to the status."""

    def __init__(
        self,
        action: str,
        params: dict[str, Any],
        expect: dict[str, Any],
        refusal: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.action = action
        self.params = params
        self.expect = expect
        self.refusal = refusal
        self.timeout = timeout


class ModuleFailure(Exception):
    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Orders 1.10.0 after 1.9.2; non-numeric parts compare as text after numbers."""
    parts = re.split(r"[.\-+]", version.strip().lstrip("vV"))
    return tuple((int(p), "") if p.isdigit() else (1 << 30, p) for p in parts)


def _bump(generation: Any) -> Any:
    return generation + 1 if isinstance(generation, int) else generation


def plan_steps(params: dict[str, Any], status: dict[str, Any]) -> list[Step]:
    """The actions that bring a thing in ``status`` to what ``params`` ask, in order.

    Each step's ``expect`` is applied to a predicted status before the next one is planned,
    so a transfer followed by state=operational plans a commission with the new owner.
    """
    steps: list[Step] = []
    now = dict(status)

    def add(step: Step) -> None:
        steps.append(step)
        now.update(step.expect)

    timeout = float(params.get("timeout") or 120.0)
    transfer = params.get("transfer_to")
    if transfer and (
        now.get("domain") != transfer["domain"]
        or now.get("trust_center_uri") != transfer["trust_center_uri"]
    ):
        lifecycle = str(now.get("lifecycle"))
        refusal = None
        if lifecycle not in TRANSFERABLE:
            refusal = (
                f"a {lifecycle} thing cannot change owner; its current owner decommissions it first"
            )
        add(
            Step(
                "transfer",
                {
                    "domain": transfer["domain"],
                    "trust_center_uri": transfer["trust_center_uri"],
                    "trust_center_ccs": transfer["trust_center_ccs"],
                },
                {
                    "domain": transfer["domain"],
                    "trust_center_uri": transfer["trust_center_uri"],
                    "lifecycle": S.INSTALLED.value,
                    "ldevid_serial": None,
                },
                refusal,
            )
        )
    state = params.get("state")
    lifecycle = str(now.get("lifecycle"))
    if state == S.INSTALLED and lifecycle == S.MANUFACTURED:
        add(Step("transition", {"to": S.INSTALLED.value}, {"lifecycle": S.INSTALLED.value}))
    elif state == S.INSTALLED and lifecycle == S.DECOMMISSIONED:
        raise ModuleFailure(
            "the thing is decommissioned; it is installed again by an ownership transfer "
            "(transfer_to), not by state=installed",
            before=status,
        )
    elif state == S.OPERATIONAL and lifecycle != S.OPERATIONAL:
        refusal = None
        if lifecycle not in COMMISSIONABLE:
            refusal = f"a {lifecycle} thing cannot bootstrap" + (
                " in its old domain; transfer it to an owner first"
                if lifecycle == S.DECOMMISSIONED
                else ""
            )
        add(
            Step(
                "commission",
                {"timeout": timeout},
                {
                    "lifecycle": S.OPERATIONAL.value,
                    "reason": None,
                    "generation": _bump(now.get("generation")),
                },
                refusal,
                timeout=timeout + 15,
            )
        )
    elif state == S.DECOMMISSIONED and lifecycle != S.DECOMMISSIONED:
        refusal = None if lifecycle != S.MANUFACTURED else "a manufactured thing has no owner"
        add(
            Step(
                "decommission",
                {},
                {"lifecycle": S.DECOMMISSIONED.value, "ldevid_serial": None},
                refusal,
            )
        )
    firmware = params.get("firmware")
    if firmware and str(now.get("firmware")) != firmware:
        lifecycle = str(now.get("lifecycle"))
        refusal = None
        if lifecycle not in MAINTAINABLE:
            refusal = f"a {lifecycle} thing is not maintained (operational only)"
        elif now.get("firmware") and version_key(firmware) < version_key(str(now["firmware"])):
            refusal = f"firmware {firmware} is older than the running {now['firmware']} (downgrade)"
        update: dict[str, Any] = {"version": firmware}
        if params.get("firmware_image"):
            update["image"] = params["firmware_image"]
        update["timeout"] = timeout
        add(Step("firmware-update", update, {"firmware": firmware}, refusal, timeout=timeout + 15))
    if params.get("rekey"):
        lifecycle = str(now.get("lifecycle"))
        refusal = None
        if lifecycle not in MAINTAINABLE:
            refusal = f"a {lifecycle} thing has no keys to rotate"
        add(
            Step(
                "rekey",
                _with_older_than({"timeout": timeout}, params),
                {"generation": _bump(now.get("generation"))},
                refusal,
                timeout=timeout + 15,
            )
        )
    if params.get("rebootstrap"):
        lifecycle = str(now.get("lifecycle"))
        refusal = None
        if lifecycle not in REBOOTSTRAPPABLE:
            refusal = f"a {lifecycle} thing cannot bootstrap"
        add(
            Step(
                "rebootstrap",
                _with_older_than({"timeout": timeout}, params),
                {"lifecycle": S.OPERATIONAL.value, "generation": _bump(now.get("generation"))},
                refusal,
                timeout=timeout + 15,
            )
        )
    return steps


def _with_older_than(call: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    if params.get("older_than") is not None:
        call["older_than"] = float(params["older_than"])
    return call


def outcome_failure(action: str, answer: dict[str, Any]) -> str | None:
    """Why an answered action did not do its job (the node reports these as results, not
    errors: a refused firmware image, a failed renewal, a bootstrap that ended failed)."""
    outcome = answer.get("outcome")
    if action == "firmware-update" and outcome not in (None, "updated", "unchanged"):
        detail = f" ({answer['detail']})" if answer.get("detail") else ""
        return f"firmware {answer.get('requested')} {outcome}: {answer.get('refusal')}{detail}"
    if action == "rekey" and outcome == "failed":
        detail = f" ({answer['detail']})" if answer.get("detail") else ""
        return f"key renewal failed: {answer.get('failure')}{detail}"
    if action in BOOTSTRAPPING_ACTIONS and answer.get("lifecycle") != S.OPERATIONAL:
        if answer.get("timed_out"):
            return f"still {answer.get('lifecycle')} when the timeout ran out"
        reason = answer.get("reason") or answer.get("last_failure") or "no reason given"
        return f"the thing is {answer.get('lifecycle')}: {reason}"
    return None


def _view(status: dict[str, Any]) -> dict[str, Any]:
    return {key: status.get(key) for key in DIFF_KEYS}


def _status(client: ControlClient) -> dict[str, Any]:
    try:
        return client.action("status")
    except ControlError as exc:
        raise ModuleFailure(f"cannot read the thing's status: {exc.describe()}") from None


def run(
    params: dict[str, Any], client: ControlClient, check_mode: bool = False, diff: bool = False
) -> dict[str, Any]:
    """The module's work, apart from AnsibleModule (tests call it against a fake endpoint)."""
    if params.get("state") == S.DECOMMISSIONED and (
        params.get("firmware") or params.get("rekey") or params.get("rebootstrap")
    ):
        raise ModuleFailure("state=decommissioned excludes firmware, rekey and rebootstrap")
    before = _status(client)
    steps = plan_steps(params, before)
    result: dict[str, Any] = {"changed": False, "before": before, "actions": []}
    if check_mode:
        after = dict(before)
        for step in steps:
            after.update(step.expect)
            result["actions"].append({"action": step.action, "params": _shown(step.params)})
        refusals = [f"{s.action}: {s.refusal}" for s in steps if s.refusal]
        if refusals:
            result["refusals"] = refusals
        result["changed"] = bool(steps)
    else:
        for step in steps:
            try:
                answer = client.action(step.action, step.params, timeout=step.timeout)
            except ControlError as exc:
                raise ModuleFailure(
                    exc.describe(),
                    action=step.action,
                    http_status=exc.status,
                    hint=exc.hint,
                    before=before,
                    actions=result["actions"],
                ) from None
            changed = changed_of(answer)
            result["actions"].append(
                {
                    "action": step.action,
                    "params": _shown(step.params),
                    "changed": changed,
                    "result": answer,
                }
            )
            result["changed"] = result["changed"] or changed
            failure = outcome_failure(step.action, answer)
            if failure is not None:
                raise ModuleFailure(
                    f"{step.action}: {failure}",
                    action=step.action,
                    changed=result["changed"],
                    before=before,
                    status=_status(client),
                    actions=result["actions"],
                )
        after = _status(client) if steps else before
    result.update(
        status=after,
        lifecycle=after.get("lifecycle"),
        firmware=after.get("firmware"),
        domain=after.get("domain"),
    )
    if diff:
        result["diff"] = {
            "before_header": "thing (before)",
            "after_header": "thing (after)" + (" - predicted" if check_mode else ""),
            "before": _view(before),
            "after": _view(after),
        }
    return result


def _shown(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as reported back: long base64 blobs shortened."""
    return {
        k: (v[:16] + "...") if isinstance(v, str) and len(v) > 64 else v for k, v in params.items()
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    client = ControlClient(
        host=module.params["control_host"],
        port=module.params["control_port"],
        timeout=float(module.params["timeout"]) + 15,
    )
    try:
        result = run(module.params, client, module.check_mode, module._diff)
    except ModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    for refusal in result.get("refusals", []):
        module.warn(f"the thing would refuse {refusal}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
