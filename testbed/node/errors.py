"""Errors raised inside the node process.

They hang off the testbed's single root (``TestbedError``: message + hint) so that the node and
the host speak about failures the same way. ``exit_code`` is what ``python -m testbed.node``
returns when the error ends the process; ``http_status`` is what the control endpoint answers
when the error ends a request instead.

    NodeError                 exit 1, HTTP 500
    ├── ConfigError           exit 2: node.json unreadable/invalid, role facts missing
    │   └── UnknownRole       exit 2: config names a role this image does not have
    ├── StateError            exit 1: state dir/file unusable (never silently reset)
    ├── NetSetupError         exit 1: a route could not be installed although permitted
    ├── ServeError            exit 1: control or metrics endpoint could not bind
    └── ActionError           HTTP 400: a control action got bad parameters
        ├── UnknownAction     HTTP 404
        └── LifecycleError    HTTP 409: illegal lifecycle transition
    ChannelError              exit 1: the EDHOC/OSCORE channel failed (testbed.node.coap.errors)

The node's exit codes are its own table (``NODE_EXIT_CODES``), apart from the CLI's
(``testbed.errors.EXIT_CODES``): a node's exit code is read in ``docker inspect`` and in the log,
never returned by ``testbed``. Within the table each code is declared by one class.
"""

from __future__ import annotations

from testbed.errors import TestbedError

NODE_EXIT_CODES: dict[int, str] = {
    0: "stopped on a signal",
    1: "failure (state, network set-up, endpoints, anything unexpected)",
    2: "configuration unusable (node.json, role facts, unknown role)",
}


class NodeError(TestbedError):
    exit_code = 1
    http_status = 500


class ConfigError(NodeError):
    # 2 like a usage error: retrying with the same config cannot succeed.
    exit_code = 2


class UnknownRole(ConfigError):
    pass


class StateError(NodeError):
    pass


class NetSetupError(NodeError):
    pass


class ServeError(NodeError):
    pass


class ActionError(NodeError):
    http_status = 400


class UnknownAction(ActionError):
    http_status = 404


class LifecycleError(ActionError):
    # 409: the request is well formed but conflicts with the thing's current state.
    http_status = 409
