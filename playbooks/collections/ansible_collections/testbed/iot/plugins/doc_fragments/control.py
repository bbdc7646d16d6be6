# Copyright: the IoT security testbed authors. Apache-2.0.
# The options every module of this collection shares: where the node's control endpoint is.
# Modules pull them in with ``extends_documentation_fragment: [testbed.iot.control]``.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  control_port:
    description: Port of the control endpoint; default from C(/etc/testbed/node.json), else 8730.
    type: int
  control_host:
    description: Address of the control endpoint (tests point it elsewhere).
    type: str
    default: 127.0.0.1
"""
