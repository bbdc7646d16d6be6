"""One error root for the host side of the testbed, and the table of its exit codes.

    TestbedError                  message + one-line hint; the CLI prints both, exit code per class
    ├── InputError                bad input: the user must change what they typed or wrote
    │   ├── TopologyError         a topology file is unreadable or invalid (file, line, key path)
    │   ├── PlanError             a valid topology that cannot be turned into a plan
    │   │   └── GroupCommandError a group command has no backend or relay to go through
    │   ├── LinkOptionError       a `testbed link` option cannot be understood
    │   ├── TransferError         an ownership transfer cannot be prepared from what was given
    │   ├── PackedThingError      a command acts on containers and was named a packed thing
    │   └── ScenarioError         a scenario file is unreadable or invalid (file, line, key path)
    ├── ImageError                building or finding node images failed
    ├── EngineError              the container runtime refused or failed
    │   ├── DaemonUnavailable     no Docker daemon answers (not running, no permission)
    │   ├── AlreadyRunning        a run of that name is up already
    │   ├── NodeFailed            a node did not become ready (carries its log tail)
    │   └── RunStopped            the run exists but its nodes are stopped (`testbed start`)
    ├── NotRunning                a command needs a run that is not up
    ├── PkiError                  minting or verifying credentials failed
    │   └── ManifestSignatureError  a firmware manifest's signature does not verify
    ├── CommissioningFailed       the run is up but some things did not become operational
    ├── PhaseError                a lifecycle phase could not be run at all
    │   └── CollectionsError      the Ansible collections the phases need cannot be had
    ├── PhaseFailed               a phase ran, and some hosts failed or were unreachable
    ├── ComposeError              docker-compose is missing or failed
    ├── LinkActionError           a node refused a link action (generic failure)
    ├── ScenarioFailed            an experiment ran and an expectation failed, or a scenario crashed
    │   ├── StepFailed            a scenario step could not do what it says
    │   └── ScenarioTimeout       a scenario ran past its time limit
    └── ObserveError              Prometheus or Grafana could not be started, queried or checked

Each exit code is declared by exactly one class (its subclasses inherit it), and ``EXIT_CODES``
is the table the README shows; a test holds the classes, the table and the README together.
The node process has its own tree and exit codes (``testbed.node.errors``): it runs in a
container and never reaches the CLI.

Library errors (docker.errors, yaml, pydantic, subprocess) are translated into these at the
boundary with ``raise ... from exc`` so that users see what to do, never a traceback.
"""

from __future__ import annotations

# code -> what it means to a user; 2 is also what typer/click return for a usage error.
EXIT_CODES: dict[int, str] = {
    0: "ok",
    1: "failure",
    2: "bad input (topology, usage, options)",
    3: "image build",
    4: "Docker refused",
    5: "no Docker daemon",
    6: "run already up",
    7: "a node failed to start",
    8: "run not up",
    9: "PKI",
    10: "some things not operational after `up` (the run stays up)",
    11: "a phase could not run",
    12: "a phase ran and some hosts failed",
    13: "docker-compose missing or failed",
    14: "run stopped (its nodes exist but do not run: `testbed start`)",
    15: "a scenario's expectation failed, or a scenario could not run (its report says which)",
    130: "interrupted",
}
OK = 0
INTERRUPTED = 130


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


class InputError(TestbedError):
    exit_code = 2


class TopologyError(InputError):
    pass


class PlanError(InputError):
    pass


class LinkOptionError(InputError):
    pass


class TransferError(InputError):
    pass


class ScenarioError(InputError):
    pass


class ImageError(TestbedError):
    exit_code = 3


class EngineError(TestbedError):
    exit_code = 4


class DaemonUnavailable(EngineError):
    exit_code = 5


class AlreadyRunning(EngineError):
    exit_code = 6


class NodeFailed(EngineError):
    exit_code = 7

    def __init__(self, node: str, message: str, log_tail: str = "", hint: str = "") -> None:
        super().__init__(message, hint)
        self.node = node
        self.log_tail = log_tail


class RunStopped(EngineError):
    exit_code = 14


class NotRunning(TestbedError):
    exit_code = 8


class PkiError(TestbedError):
    exit_code = 9


class ManifestSignatureError(PkiError):
    """A well-formed manifest whose signature does not verify with the vendor CA key."""


class CommissioningFailed(TestbedError):
    exit_code = 10


class PhaseError(TestbedError):
    """A phase could not be run at all (no playbook, ansible missing, runner error)."""

    exit_code = 11


class CollectionsError(PhaseError):
    """The Ansible collections the phases need could not be found, fetched or extracted."""


class PhaseFailed(TestbedError):
    """The phase ran, and some hosts failed or were unreachable."""

    exit_code = 12


class ComposeError(TestbedError):
    exit_code = 13


class LinkActionError(TestbedError):
    """A node refused or failed a link action (exit code 1: the request itself was fine)."""


class ObserveError(TestbedError):
    """Exit code 1 (generic): Prometheus is an addition to a run, never its reason to fail."""


class ScenarioFailed(TestbedError):
    exit_code = 15


class StepFailed(ScenarioFailed):
    """A step could not do what it says (not an expectation: the scenario is in error)."""


class ScenarioTimeout(ScenarioFailed):
    pass


class PackedThingError(InputError):
    """`testbed stop`/`start`/`restart` of one packed thing: it has no container of its own,
    and its thing host's container runs its packmates too (exit 2)."""


class MoveError(InputError):
    """`testbed move`: an unknown thing or PAN, the PAN it is on, a thing that cannot move
    (not on a radio PAN), or a building whose policy pins planned addresses (exit 2)."""


class GroupCommandError(PlanError):
    """`testbed group`: the run has no single backend or no relay address on the PAN (exit 2)."""
