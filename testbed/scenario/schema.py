"""Pydantic models of a scenario file (``scenarios/*.yaml``).

A scenario names a topology (a file, plus inline overrides), a seed, and steps. ``setup`` runs
once after the run is made; ``steps`` run once per sweep point and repeat; ``teardown`` runs once
at the end (and the run is always taken down, whatever happened). Inside ``steps``, ``${NAME}``
stands for the sweep parameter's value at the current point (and ``${repeat}``, ``${seed}``).

Every step is a mapping with exactly one key naming what it does, e.g.::

    - link_set: {link: pan-floor1, loss: "${loss}"}
    - bootstrap: {name: boot, timeout: 120}
    - expect: {measure: boot.success_rate, min: 0.9, message: "most bootstraps succeed"}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from testbed.topology import units

NAME_RE = r"^[a-z][a-z0-9-]{0,39}$"
MEASURE_RE = r"^[a-z][a-z0-9_.-]{0,79}$"
Duration = Annotated[float, BeforeValidator(units.duration)]
MeasureName = Annotated[str, Field(pattern=MEASURE_RE)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Up(Strict):
    """Bring the run up (plan, PKI, nodes, Prometheus) and commission it, as `testbed up`."""

    commission: bool = True
    timeout: Duration = Field(240.0, description="seconds to wait for every thing")
    require_all: bool = Field(
        True, description="fail the scenario when a thing is not operational after up"
    )


class Phase(Strict):
    """A lifecycle phase through Ansible, as `testbed phase NAME`."""

    name: str
    limit: str | None = None
    extravars: dict[str, Any] = {}
    record_as: MeasureName | None = Field(
        None, description="measure prefix: PREFIX.succeeded (0/1), .duration_s, .failed_hosts"
    )
    must_succeed: bool = Field(
        False, description="a failed phase is an error of the scenario (else only measured)"
    )


class LinkSet(Strict):
    """Impair a link live, as `testbed link set` (the options given replace the current ones)."""

    link: str
    loss: str | float | None = None
    delay: str | None = None
    jitter: str | None = None
    rate: str | None = None
    duplicate: str | None = None
    reorder: str | None = None
    corrupt: str | None = None
    gilbert_elliott: str | None = None
    node: str | None = Field(
        default=None, description="PAN links only: just the links from and to this thing"
    )


class LinkReset(Strict):
    link: str


class ReplaySource(Strict):
    """Frames for the replay attack: those a capture of this point recorded towards a thing."""

    capture: MeasureName = Field(description="name of an earlier capture step")
    to: str = Field(description="the thing whose received single-frame packets are replayed")


class AttackStart(Strict):
    """Start an attack by name on an attacker node (its control endpoint)."""

    attacker: str
    attack: str
    target: str | None = Field(
        None, description="a node name (its data-network address is passed on) or an address"
    )
    replay: ReplaySource | None = None
    params: dict[str, Any] = {}


class AttackStop(Strict):
    attacker: str
    attack: str
    record_as: MeasureName | None = Field(
        None, description="measure prefix for the attack's counters (sent, answered, refused)"
    )


class StateCondition(Strict):
    """A value in a node's GET /state answer (dotted path) equals the one given."""

    node: str
    path: str
    equals: str | float | int | bool | None


class Wait(Strict):
    """Wait a time, until a PromQL expression returns a non-empty, non-zero result, or until a
    node's state says something."""

    seconds: Duration | None = None
    until: str | None = None
    state: StateCondition | None = None
    timeout: Duration = 120.0
    must_hold: bool = Field(True, description="a condition not met in time fails the scenario")
    record_as: MeasureName | None = Field(
        None, description="measure: seconds it took (none when it did not happen in time)"
    )

    @model_validator(mode="after")
    def _one(self) -> Wait:
        if sum(x is not None for x in (self.seconds, self.until, self.state)) != 1:
            raise ValueError("give exactly one of 'seconds', 'until' or 'state'")
        return self


class Measure(Strict):
    """A named value: a PromQL expression (instant, or reduced over a window), or a value from
    a node's state or control action (dotted path into its JSON answer)."""

    name: MeasureName
    promql: str | None = None
    window: Duration | None = Field(None, description="PromQL over the last WINDOW seconds")
    reduce: Literal["last", "min", "max", "mean"] = "last"
    series: bool = Field(False, description="keep the time series over the window for plots")
    state: str | None = Field(None, description="node whose GET /state is read")
    action: str | None = Field(None, description="control action run on `node`")
    node: str | None = None
    params: dict[str, Any] = {}
    path: str | None = Field(None, description="dotted path into the JSON, e.g. bootstrap.outcome")
    default: float | str | None = Field(
        None,
        description="value when the path is not in the answer (a counter that was never "
        "incremented is left out of it); without: a missing path is an error",
    )
    unit: str = ""

    @model_validator(mode="after")
    def _one(self) -> Measure:
        sources = [self.promql is not None, self.state is not None, self.action is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one of 'promql', 'state' or 'action'")
        if self.action is not None and self.node is None:
            raise ValueError("'action' needs 'node'")
        if self.promql is None and (self.window is not None or self.series):
            raise ValueError("'window' and 'series' apply to 'promql' only")
        if self.series and self.window is None:
            raise ValueError("'series' needs a 'window'")
        return self


class Bootstrap(Strict):
    """Things bootstrap again (their profile's handshake + enrolment + OSCORE) and the outcome
    is measured: NAME.success_rate, .duration_s (mean), .frames (mean radio frames sent),
    .bytes, .attempts, .datagrams, .handshake_bytes, .handshake_datagrams, .retransmissions,
    .round_trips; with per_profile also NAME.PROFILE.* (testbed.scenario.comparison)."""

    name: MeasureName = "bootstrap"
    things: list[str] | Literal["all"] = "all"
    timeout: Duration = 180.0
    per_profile: bool = Field(
        False, description="also NAME.PROFILE.<figure> per bootstrap profile (mixed buildings)"
    )
    fates: bool = Field(
        False,
        description="follow each fragmented datagram of the bootstraps to its fate on the "
        "radio medium: NAME.frag.* measures (reads every border router before and after, "
        "through its control endpoint, which a running capture holds: not with a capture)",
    )


class Command(Strict):
    """One command to several things: one group request (Group OSCORE through the PAN's border
    router, as `testbed group`) or one unicast OSCORE write per thing, with what it cost and
    who acted on it (testbed.scenario.comparison.command)."""

    name: MeasureName = "command"
    mode: Literal["group", "unicast"]
    pan: str
    things: list[str] = Field(min_length=1, description="the members the command is for")
    outsiders: list[str] = Field(
        default_factory=list, description="things that must not act on it (NAME.outsiders_acted)"
    )
    resource: str = "light"
    value: Any
    timeout: Duration = Field(30.0, description="seconds to wait for every thing to act on it")


class Capture(Strict):
    """Record a radio PAN's air into NAME.pcap while the next steps run (or for duration s)."""

    pan: str
    duration: Duration = Field(10.0, gt=0, le=300)
    name: MeasureName = "capture"
    node: str | None = Field(None, description="only this thing's frames (sent by it or to it)")
    eavesdrop: bool = Field(
        False, description="list what the capture shows in clear: NAME.clear.* measures"
    )


class Expect(Strict):
    """An assertion on a measured value; fails the point with the message when it does not hold."""

    measure: MeasureName
    min: float | None = None
    max: float | None = None
    equals: float | str | None = None
    message: str
    when: dict[str, float | int | str] = Field(
        default_factory=dict, description="only at sweep points with these values"
    )

    @model_validator(mode="after")
    def _bound(self) -> Expect:
        if self.min is None and self.max is None and self.equals is None:
            raise ValueError("give a bound: 'min', 'max' or 'equals'")
        return self


class NodeControl(Strict):
    """Stop or start a node's container (a trust center going away and coming back)."""

    node: str
    wait_ready: bool = True


class Action(Strict):
    """A control action on a node (e.g. the backend's read), optionally recorded."""

    node: str
    action: str
    params: dict[str, Any] = {}
    record_as: MeasureName | None = None
    path: str | None = None


class Move(Strict):
    """A thing moves to another radio PAN (`testbed move`), measured: NAME.ok, .read_again_s
    (from the start of the move until every backend read it at its new address), .radio_s,
    .handshakes, .bytes, .datagrams, .frames (radio frames it sent re-registering)."""

    thing: str
    pan: str
    name: MeasureName = "move"
    reregister: bool = Field(True, description="re-register with the trust center (handshake)")
    wait_read: Duration = Field(
        120.0, description="s to wait for a backend read at the new address"
    )
    must_succeed: bool = Field(True, description="a failed move fails the scenario")


class Down(Strict):
    keep_files: bool = False


STEP_KINDS = (
    "up",
    "phase",
    "link_set",
    "link_reset",
    "attack_start",
    "attack_stop",
    "wait",
    "measure",
    "bootstrap",
    "capture",
    "expect",
    "node_stop",
    "node_start",
    "action",
    "move",
    "command",
    "down",
)


class Step(Strict):
    up: Up | None = None
    phase: Phase | None = None
    link_set: LinkSet | None = None
    link_reset: LinkReset | None = None
    attack_start: AttackStart | None = None
    attack_stop: AttackStop | None = None
    wait: Wait | None = None
    measure: Measure | None = None
    bootstrap: Bootstrap | None = None
    capture: Capture | None = None
    expect: Expect | None = None
    node_stop: NodeControl | None = None
    node_start: NodeControl | None = None
    action: Action | None = None
    move: Move | None = None
    command: Command | None = None
    down: Down | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_args(cls, data: Any) -> Any:
        # `- up:` and `- down:` without arguments read as None: mean the defaults.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ("up", "down") else v) for k, v in data.items()}
        if isinstance(data, str) and data in ("up", "down"):
            return {data: {}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a step is a mapping with exactly one of: "
                + ", ".join(STEP_KINDS)
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def args(self) -> Any:
        return getattr(self, self.kind)


class Sweep(Strict):
    """A parameter and its values: ``steps`` run once per value (``${NAME}`` in them)."""

    parameter: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,29}$")]
    values: list[float | int | str] = Field(min_length=1)
    unit: str = ""


class Scenario(Strict):
    """An experiment: a topology, a seed, steps, optionally swept and repeated."""

    name: Annotated[str, Field(pattern=NAME_RE)]
    description: str = ""
    topology: str = Field(description="topology file, relative to the scenario file")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="merged into the topology: mappings key by key, lists of named items "
        "(pans, things, hosts, ...) by name",
    )
    seed: int = Field(1, ge=0, description="radio loss patterns (every PAN's seed) and sweeps")
    repeat: int = Field(1, ge=1, le=100)
    sweep: Sweep | None = None
    setup: list[Step] = Field(default_factory=lambda: [Step.model_validate({"up": {}})])
    steps: list[Step] = Field(min_length=1)
    teardown: list[Step] = []
    timeout: Duration = Field(1800.0, description="wall-time limit of the whole scenario")
    tags: list[str] = []
    short: dict[str, Any] = Field(
        default_factory=dict,
        description="keys replaced for the short version (`--short`: make test), e.g. a "
        "smaller sweep or fewer repeats",
    )

    def points(self) -> list[dict[str, Any]]:
        if self.sweep is None:
            return [{}]
        return [{self.sweep.parameter: v} for v in self.sweep.values]
