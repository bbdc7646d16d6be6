"""One error root for the whole testbed.

    TestbedError                  message + one-line hint; the CLI prints both, exit code per class
    ├── TopologyError             a topology file is unreadable or invalid (file, line, key path)
    ├── PlanError                 a valid topology that cannot be turned into a plan
    ├── ImageError                building or finding node images failed
    ├── BackendError              the container runtime refused or failed
    │   ├── DaemonUnavailable     no Docker daemon answers (not running, no permission)
    │   ├── AlreadyRunning        a run of that name is up already
    │   └── NodeFailed            a node did not become ready (carries its log tail)
    ├── NotRunning                a command needs a run that is not up
    ├── CommissioningFailed       the run is up but some things did not become operational
    └── PkiError                  minting or verifying credentials failed

Library errors (docker.errors, yaml, pydantic, subprocess) are translated into these at the
boundary with ``raise ... from exc`` so that users see what to do, never a traceback.
"""

from __future__ import annotations


class TestbedError(Exception):
    """Root of all testbed errors: a message and a hint of what to do about it."""

    exit_code = 1
    __test__ = False  # pytest: this is not a test class despite its name

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


class TopologyError(TestbedError):
    exit_code = 2


class PlanError(TestbedError):
    exit_code = 2


class ImageError(TestbedError):
    exit_code = 3


class BackendError(TestbedError):
    exit_code = 4


class DaemonUnavailable(BackendError):
    exit_code = 5


class AlreadyRunning(BackendError):
    exit_code = 6


class NodeFailed(BackendError):
    exit_code = 7

    def __init__(self, node: str, message: str, log_tail: str = "", hint: str = "") -> None:
        super().__init__(message, hint)
        self.node = node
        self.log_tail = log_tail


class NotRunning(TestbedError):
    exit_code = 8


class PkiError(TestbedError):
    exit_code = 9


class CommissioningFailed(TestbedError):
    exit_code = 10


class GroupCommandError(PlanError):
    """`testbed group`: the run has no single backend or no relay address on the PAN (exit 2)."""
