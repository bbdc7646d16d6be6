"""What each scenario step does, through the adapter (the CLI's use cases)."""

from __future__ import annotations

import base64
import json
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import StepFailed, TestbedError
from testbed.node.radio import mac
from testbed.node.radio.errors import RadioError
from testbed.scenario import comparison, eavesdrop, fragfate, moves, schema
from testbed.scenario.adapter import Testbed
from testbed.scenario.results import Expectation, Measurement, PointResult


@dataclass
class Context:
    """What the steps of one scenario share: the run, where files go, the current point."""

    testbed: Testbed
    out_dir: Path  # this scenario's directory in the report
    topology: Path  # the merged topology file
    point: PointResult
    say: Callable[[str], None] = lambda _m: None
    progress: Callable[[str], None] = lambda _m: None  # the step running now (transient)
    captures: list[threading.Thread] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    capture_errors: list[str] = field(default_factory=list)
    vocabulary: dict[str, list[str]] = field(default_factory=dict)

    def record(
        self,
        name: str,
        value: float | str | None,
        unit: str = "",
        series: list[list[float]] | None = None,
    ) -> None:
        self.point.measurements.append(Measurement(name, value, unit, series=series))

    def file_name(self, stem: str, suffix: str) -> Path:
        point = "-".join(f"{k}{v}" for k, v in self.point.point.items())
        parts = [stem, point, f"r{self.point.repeat}"]
        return self.out_dir / ("-".join(p for p in parts if p) + suffix)


def run_step(ctx: Context, step: schema.Step) -> None:
    handler = HANDLERS[step.kind]
    ctx.point.log.append(f"{time.strftime('%H:%M:%S')} {step.kind} {_brief(step.args)}")
    ctx.progress(f"{ctx.point.scenario} [{ctx.point.label}]: {step.kind} {_brief(step.args)[:80]}")
    handler(ctx, step.args)


def _brief(args: Any) -> str:
    data = args.model_dump(exclude_defaults=True) if hasattr(args, "model_dump") else args
    return json.dumps(data, default=str)[:200]


# ------------------------------------------------------------------ bring-up and teardown


def up(ctx: Context, args: schema.Up) -> None:
    outcome = ctx.testbed.up(ctx.topology, commission=args.commission, timeout=args.timeout)
    operational = sum(1 for s, _ in outcome.things.values() if s == "operational")
    ctx.record("up.things", len(outcome.things))
    ctx.record("up.operational", operational)
    failed = {
        n: f"{s or 'no answer'} {r}".strip()
        for n, (s, r) in outcome.things.items()
        if s != "operational"
    }
    if args.commission and args.require_all and failed:
        raise StepFailed(
            f"{len(failed)} of {len(outcome.things)} things not operational after up: "
            + "; ".join(f"{n}: {why}" for n, why in sorted(failed.items())),
            "set up.require_all: false to measure this instead of stopping",
        )


def down(ctx: Context, args: schema.Down) -> None:
    ctx.testbed.down(keep_files=args.keep_files)


def phase(ctx: Context, args: schema.Phase) -> None:
    result = ctx.testbed.phase(args.name, args.limit, dict(args.extravars))
    prefix = args.record_as or f"phase.{args.name}"
    ctx.record(f"{prefix}.succeeded", 1.0 if result.succeeded else 0.0)
    ctx.record(f"{prefix}.duration_s", round(result.end - result.start, 3), "s")
    ctx.record(f"{prefix}.failed_hosts", float(len(result.failed_hosts)))
    if args.must_succeed and not result.succeeded:
        raise StepFailed(
            f"phase {args.name} failed on {', '.join(result.failed_hosts) or 'the run'}: "
            + "; ".join(result.hosts[h].reason for h in result.failed_hosts)[:500],
            f"Ansible's output: {result.artifacts}/stdout",
        )


# ------------------------------------------------------------------ links, nodes, attacks


def link_set(ctx: Context, args: schema.LinkSet) -> None:
    given = args.model_dump(exclude={"link"})
    ctx.testbed.link_set(args.link, {k: None if v is None else str(v) for k, v in given.items()})


def link_reset(ctx: Context, args: schema.LinkReset) -> None:
    ctx.testbed.link_reset(args.link)


def node_stop(ctx: Context, args: schema.NodeControl) -> None:
    ctx.testbed.stop_node(args.node)


def node_start(ctx: Context, args: schema.NodeControl) -> None:
    ctx.testbed.start_node(args.node, args.wait_ready)


def attack_start(ctx: Context, args: schema.AttackStart) -> None:
    params: dict[str, Any] = {"attack": args.attack, **args.params}
    if args.target is not None:
        params["target"] = ctx.testbed.address_of(args.target)
    if args.replay is not None:
        frames = _recorded_towards(ctx, args.replay)
        ctx.record(f"attack.{args.attack}.recorded", float(len(frames)))
        if not frames:
            raise StepFailed(
                f"capture {args.replay.capture} holds no frame to {args.replay.to}",
                "capture while the backend reads that thing",
            )
        params["frames"] = [base64.b64encode(f).decode("ascii") for f in frames[-512:]]
    ctx.testbed.action(args.attacker, "attack-start", params)


def _recorded_towards(ctx: Context, source: schema.ReplaySource) -> list[bytes]:
    """Single-frame packets (IPHC, not fragments) the capture saw sent to the thing."""
    finish_captures(ctx)
    path = ctx.file_name(source.capture, ".pcap")
    if not path.is_file():
        raise StepFailed(f"no capture {source.capture!r} at this point", "add a capture step first")
    short = ctx.testbed.short_address(source.to)
    out = []
    for frame in eavesdrop.frames(path):
        try:
            decoded = mac.decode(frame)
        except RadioError:
            continue
        if decoded.dst == short and decoded.payload and decoded.payload[0] >> 5 == 0b011:
            out.append(frame)
    return out


def attack_stop(ctx: Context, args: schema.AttackStop) -> None:
    answer = ctx.testbed.action(args.attacker, "attack-stop", {"attack": args.attack})
    prefix = args.record_as or f"attack.{args.attack}"
    for key, value in sorted((answer.get("counters") or {}).items()):
        ctx.record(f"{prefix}.{key}", float(value))


def action(ctx: Context, args: schema.Action) -> None:
    try:
        answer: Any = ctx.testbed.action(args.node, args.action, dict(args.params))
        ok = 1.0
    except TestbedError as exc:
        if args.record_as is None:
            raise
        answer, ok = {"error": exc.message}, 0.0
    if args.record_as:
        ctx.record(f"{args.record_as}.ok", ok)
        if args.path:
            ctx.record(f"{args.record_as}.value", _scalar(dig(answer, args.path, strict=ok > 0)))


# ------------------------------------------------------------------ waiting and measuring


def wait(ctx: Context, args: schema.Wait) -> None:
    if args.seconds is not None:
        time.sleep(args.seconds)
        return
    started = time.monotonic()
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        if _condition(ctx, args):
            if args.record_as:
                ctx.record(args.record_as, round(time.monotonic() - started, 3), "s")
            return
        time.sleep(1.0 if args.state is not None else 2.0)
    if args.record_as:
        ctx.record(args.record_as, None, "s")
    if args.must_hold:
        what = args.until or (
            f"{args.state.node} {args.state.path} == {args.state.equals!r}" if args.state else ""
        )
        raise StepFailed(
            f"condition not met within {args.timeout:g} s: {what}",
            "check it by hand: `testbed metrics url`, `testbed status --json`",
        )


def _condition(ctx: Context, args: schema.Wait) -> bool:
    if args.state is not None:
        answer = ctx.testbed.state(args.state.node)
        return answer is not None and dig(answer, args.state.path) == args.state.equals
    api, expr = ctx.testbed.prometheus(), ctx.testbed.promql(args.until or "")
    return any(_truthy(r.get("value", [0, "0"])[1]) for r in api.query(expr))


def measure(ctx: Context, args: schema.Measure) -> None:
    if args.promql is not None:
        ctx.record(args.name, *_promql(ctx, args))
        return
    if args.state is not None:
        answer = ctx.testbed.state(args.state)
    else:
        assert args.action is not None and args.node is not None
        answer = ctx.testbed.action(args.node, args.action, dict(args.params))
    if args.path and args.default is not None and dig(answer, args.path) is None:
        value: Any = args.default
    else:
        value = dig(answer, args.path, strict=True) if args.path else answer
    ctx.record(args.name, _scalar(value), args.unit)


def _promql(
    ctx: Context, args: schema.Measure
) -> tuple[float | None, str, list[list[float]] | None]:
    api, expr = ctx.testbed.prometheus(), ctx.testbed.promql(args.promql or "")
    if args.window is None:
        results = api.query(expr)
        return (_sum(float(r["value"][1]) for r in results) if results else None), args.unit, None
    end = time.time()
    step = max(1.0, args.window / 120)
    results = api.query_range(expr, end - args.window, end, step)
    # Several series: summed per timestamp (a building-wide figure).
    summed: dict[float, float] = {}
    for r in results:
        for t, v in r.get("values", []):
            summed[float(t)] = summed.get(float(t), 0.0) + float(v)
    points = sorted(summed.items())
    values = [v for _, v in points]
    if not values:
        return None, args.unit, None
    reduced = {
        "last": values[-1],
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }[args.reduce]
    series = [[t - points[0][0], v] for t, v in points] if args.series else None
    return reduced, args.unit, series


def bootstrap(ctx: Context, args: schema.Bootstrap) -> None:
    things = ctx.testbed.things() if args.things == "all" else list(args.things)
    if not things:
        raise StepFailed("bootstrap: the run has no things", "check the topology")

    def one(thing: str) -> dict[str, Any]:
        try:
            ctx.testbed.action(
                thing, "rebootstrap", {"timeout": args.timeout}, timeout=args.timeout + 30
            )
        except TestbedError as exc:
            return {"lifecycle": "error", "error": exc.message}
        return ctx.testbed.state(thing) or {}

    fates_before = _fates(ctx) if args.fates else {}
    with ThreadPoolExecutor(max_workers=min(8, len(things))) as pool:
        before = list(pool.map(lambda t: _energy(ctx, t), things))
        states = list(pool.map(one, things))
        after = list(pool.map(lambda t: _energy(ctx, t), things))
    fates_after = _fates(ctx) if args.fates else {}
    spent = [
        b2 - b1 for b1, b2 in zip(before, after, strict=True) if b1 is not None and b2 is not None
    ]
    if spent:  # things with an energy estimate (topology `energy`): joules per bootstrap
        ctx.record(f"{args.name}.energy_mj", 1000 * statistics.fmean(spent), "mJ")
    ok = [s for s in states if s.get("lifecycle") == "operational"]
    reports = [s.get("bootstrap") or {} for s in ok]
    ctx.record(f"{args.name}.attempted", float(len(things)))
    ctx.record(f"{args.name}.success_rate", len(ok) / len(things))
    durations = [float(r["duration_s"]) for r in reports if r.get("duration_s") is not None]
    frames = [
        float((r.get("radio") or {}).get("frames_sent", 0)) for r in reports if r.get("radio")
    ]
    sizes = [float(sum(m.get("bytes", 0) for m in r.get("messages", []))) for r in reports]
    attempts = [float((s.get("bootstrap_run") or {}).get("attempts", 1)) for s in ok]
    for key, values, unit in (
        ("duration_s", durations, "s"),
        ("frames", frames, "frames"),
        ("bytes", sizes, "B"),
        ("attempts", attempts, ""),
    ):
        ctx.record(f"{args.name}.{key}", statistics.fmean(values) if values else None, unit)
    for key, value in comparison.totals(states).items():
        ctx.record(f"{args.name}.{key}", value)
    if args.per_profile:
        by_thing = dict(zip(things, states, strict=True))
        rows = comparison.per_profile(by_thing, ctx.testbed.profiles())
        for profile, row in rows.items():
            for key, value in row.items():
                ctx.record(f"{args.name}.{comparison.measure_part(profile)}.{key}", value)
    if fates_after:  # radio PANs: the fate of each fragmented datagram of these bootstraps
        measures = fragfate.summarise(
            fragfate.Bootstrap(
                fragfate.tally(fates_before, fates_after, t),
                s in ok,
                sum(int(m.get("retransmissions", 0)) for m in _messages(s)),
            )
            for t, s in zip(things, states, strict=True)
        )
        for key, value in measures.items():
            ctx.record(f"{args.name}.frag.{key}", value)
    failed = [
        f"{t}: {s.get('lifecycle_reason') or s.get('error') or s.get('lifecycle')}"
        for t, s in zip(things, states, strict=True)
        if s not in ok
    ]
    if failed:
        ctx.point.log.append("  not operational: " + "; ".join(failed)[:600])


def _messages(state: dict[str, Any]) -> list[dict[str, Any]]:
    messages = (state.get("bootstrap") or {}).get("messages") or []
    return [m for m in messages if isinstance(m, dict)]


def _fates(ctx: Context) -> dict[str, dict[str, Any]]:
    """Every border router's per-link fragment fates (fragfate.fates_of), keyed by router."""
    out: dict[str, dict[str, Any]] = {}
    for router in ctx.testbed.nodes("border_router"):
        try:
            answer = ctx.testbed.action(router, "link-show", {})
        except TestbedError:  # no radio PAN there
            continue
        out.update({f"{router}/{k}": v for k, v in fragfate.fates_of(answer).items()})
    return out


def _energy(ctx: Context, thing: str) -> float | None:
    """The thing's estimated energy so far (J); None without an estimate."""
    try:
        return float(ctx.testbed.action(thing, "energy", {})["total_joules"])
    except (TestbedError, KeyError, TypeError, ValueError):
        return None


def capture(ctx: Context, args: schema.Capture) -> None:
    """Runs in the background for its duration, so the next steps are what it records."""
    path = ctx.file_name(args.name, ".pcap")

    def record() -> None:
        try:
            pcap, info = ctx.testbed.capture(args.pan, args.duration, args.node)
            path.write_bytes(pcap)
            ctx.files[path.name] = path.name
            ctx.record(f"{args.name}.frames", float(info.get("frames", 0)))
            if args.eavesdrop:
                seen = eavesdrop.analyse(path, info.get("context0"), ctx.vocabulary)
                (path.with_suffix(".clear.json")).write_text(json.dumps(seen, indent=2))
                ctx.files[path.with_suffix(".clear.json").name] = path.with_suffix(
                    ".clear.json"
                ).name
                for key, values in sorted(seen["clear"].items()):
                    ctx.record(f"{args.name}.clear.{key}", float(len(values)))
                ctx.record(f"{args.name}.clear.secrets_found", float(len(seen["secrets"])))
        except Exception as exc:  # reported on the point; the steps go on
            ctx.capture_errors.append(f"capture {args.name}: {exc}")

    thread = threading.Thread(target=record, name=f"capture-{args.name}", daemon=True)
    thread.start()
    ctx.captures.append(thread)


def finish_captures(ctx: Context, timeout: float = 400.0) -> None:
    for thread in ctx.captures:
        thread.join(timeout)
    ctx.captures.clear()
    if ctx.capture_errors:
        errors, ctx.capture_errors = ctx.capture_errors, []
        raise StepFailed("; ".join(errors), "see the scenario's log")


# ------------------------------------------------------------------ expectations


def expect(ctx: Context, args: schema.Expect) -> None:
    if any(str(ctx.point.point.get(k)) != str(v) for k, v in args.when.items()):
        return  # an expectation of other sweep points
    finish_captures(ctx)  # expectations may be on what a capture measured
    value = ctx.point.value(args.measure)
    if not any(m.name == args.measure for m in ctx.point.measurements):
        ctx.point.expectations.append(
            Expectation(
                args.measure,
                "a measured value",
                None,
                False,
                f"{args.message} (never measured: is the name right?)",
            )
        )
        return
    passed, bounds = True, []
    if isinstance(args.equals, str) and args.equals.lower() == "none":
        bounds.append("no value")
        passed = value is None
    elif args.equals is not None:
        bounds.append(f"== {args.equals}")
        passed = value is not None and (
            str(value) == str(args.equals)
            if isinstance(args.equals, str) or isinstance(value, str)
            else abs(float(value) - float(args.equals)) < 1e-9
        )
    number = value if isinstance(value, int | float) else None
    if args.min is not None:
        bounds.append(f">= {args.min:g}")
        passed = passed and number is not None and number >= args.min
    if args.max is not None:
        bounds.append(f"<= {args.max:g}")
        passed = passed and number is not None and number <= args.max
    ctx.point.expectations.append(
        Expectation(args.measure, " and ".join(bounds), value, passed, args.message)
    )


# ------------------------------------------------------------------ helpers


def dig(data: Any, path: str, *, strict: bool = False) -> Any:
    """The value at a dotted path; strict: a path that is not there is an error (a value that
    is there and null is None), so that a typo cannot pass an expectation of "no value"."""
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif strict:
            keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
            raise StepFailed(f"no {part!r} (of path {path!r}) in the answer", f"there: {keys}")
        else:
            return None
    return data


def _scalar(value: Any) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | dict):
        return float(len(value))
    return str(value)


def _truthy(text: str) -> bool:
    try:
        return float(text) != 0.0
    except ValueError:
        return False


def _sum(values: Any) -> float:
    return float(sum(values))


HANDLERS: dict[str, Callable[[Context, Any], None]] = {
    "up": up,
    "down": down,
    "phase": phase,
    "link_set": link_set,
    "link_reset": link_reset,
    "node_stop": node_stop,
    "node_start": node_start,
    "attack_start": attack_start,
    "attack_stop": attack_stop,
    "action": action,
    "move": moves.move,
    "command": comparison.command,
    "wait": wait,
    "measure": measure,
    "bootstrap": bootstrap,
    "capture": capture,
    "expect": expect,
}
