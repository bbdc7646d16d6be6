#!/usr/bin/python
# Copyright: the IoT security testbed authors. Apache-2.0.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: phase_mark
short_description: Record a lifecycle phase run on a testbed node as Prometheus metrics
version_added: "0.2.0"
description:
  - Tells the node's local control endpoint (action C(phase-mark), available on every role)
    that a phase run including this node ended, with its outcome. The node then exports
    C(testbed_phase_runs_total{phase,outcome}) and
    C(testbed_phase_last_run_start_seconds{phase}) / C(testbed_phase_last_run_end_seconds{phase}),
    so the run's Prometheus holds the phase runs per host and dashboards can mark them.
  - The phase playbooks call it in the C(always) section of their tasks, so that a host that
    failed is marked V(failed) too. An unreachable host cannot be marked (its node is down).
  - Never reports a change - a mark is bookkeeping, and phase outcomes (ok / changed) must not
    count it. The same phase, start and outcome marked twice count once.
  - Runs inside the node (C(community.docker.docker) connection, the node's Python).
options:
  phase:
    description: The phase name (install, commission, maintain, ...).
    type: str
    required: true
  outcome:
    description: How the phase ended for this host.
    type: str
    choices: [successful, failed]
    required: true
  start:
    description:
      - Unix time the phase run started; the playbooks pass C(testbed_phase_start), which
        C(testbed phase) sets. Default - the end.
    type: float
  end:
    description: Unix time the phase run ended for this host. Default - now, on the node.
    type: float
  timeout:
    description: Seconds to wait for the node's answer.
    type: float
    default: 10
extends_documentation_fragment:
  - testbed.iot.control
attributes:
  check_mode:
    support: full
    details: Marks nothing (a predicted phase run is no phase run).
  diff_mode:
    support: none
seealso:
  - module: testbed.iot.thing
author:
  - IoT security testbed authors
"""

EXAMPLES = r"""
- name: A phase with its mark
  hosts: role_thing
  gather_facts: false
  tasks:
    - block:
        - name: The thing is operational
          testbed.iot.thing:
            state: operational
      always:
        - name: Mark the phase run on the node (Prometheus)
          testbed.iot.phase_mark:
            phase: commission
            # a host that failed in this play is no longer in ansible_play_hosts
            outcome: "{{ 'successful' if inventory_hostname in ansible_play_hosts else 'failed' }}"
            start: "{{ testbed_phase_start | default(omit) }}"
          ignore_errors: true
"""

RETURN = r"""
mark:
  description: The node's answer (phase, outcome, counted - false when it was marked before).
  returned: unless in check mode
  type: dict
  sample: {phase: commission, outcome: successful, counted: true}
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped]  # noqa: E402
from ansible_collections.testbed.iot.plugins.module_utils.control import (  # noqa: E402
    ControlClient,
    ControlError,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "phase": {"type": "str", "required": True},
    "outcome": {"type": "str", "choices": ["successful", "failed"], "required": True},
    "start": {"type": "float"},
    "end": {"type": "float"},
    "control_port": {"type": "int"},
    "control_host": {"type": "str", "default": "127.0.0.1"},
    "timeout": {"type": "float", "default": 10.0},
}


def run(params: dict[str, Any], client: ControlClient, check_mode: bool = False) -> dict[str, Any]:
    """The module's result; raises ControlError when the node refuses or does not answer."""
    if check_mode:
        return {"changed": False}
    body = {k: params[k] for k in ("phase", "outcome", "start", "end") if params.get(k) is not None}
    answer = client.action("phase-mark", body)
    answer.pop("changed", None)
    return {"changed": False, "mark": answer}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    client = ControlClient(
        host=module.params["control_host"],
        port=module.params["control_port"],
        timeout=float(module.params["timeout"]),
    )
    try:
        result = run(module.params, client, module.check_mode)
    except ControlError as exc:
        module.fail_json(msg=exc.describe())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
