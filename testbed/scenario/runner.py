"""Run scenarios: each in a run of its own, every point and repeat, always torn down.

A failed expectation fails its point (and the suite's exit code); a step that cannot do what it
says is an error of its point (or of the whole scenario in setup); the next scenario runs either
way. Everything a scenario leaves (merged topology, step log, pcaps, metrics snapshot, phase
log, node logs) goes into OUT/<scenario>/, linked from the report.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.markup import escape

from testbed.errors import ScenarioTimeout, StepFailed, TestbedError
from testbed.scenario import loader, steps
from testbed.scenario import topology as scenario_topology
from testbed.scenario.adapter import Testbed
from testbed.scenario.results import PointResult, ScenarioResult, SuiteResult, commit
from testbed.scenario.schema import Step

Say = Callable[[str], None]
TestbedFactory = Callable[[str], Testbed]
LOG_TAIL = 400


def run_suite(
    files: Sequence[Path],
    out_dir: Path,
    *,
    suite: str = "scenarios",
    repeat: int | None = None,
    short: bool = False,
    run_prefix: str = "sc",
    say: Say = lambda _m: None,
    progress: Say = lambda _m: None,
    make_testbed: TestbedFactory = Testbed,
) -> SuiteResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = SuiteResult(suite=suite, start=time.time(), commit=commit())
    for file in files:
        result.scenarios.append(
            run_scenario(
                file,
                out_dir,
                repeat=repeat,
                short=short,
                run_prefix=run_prefix,
                say=say,
                progress=progress,
                make_testbed=make_testbed,
            )
        )
        result.end = time.time()
        result.write_json(out_dir / "results.json")  # partial results survive a crash
    result.end = time.time()
    return result


def run_name(prefix: str, scenario: str) -> str:
    # Unique per run (several suites may run at once); at most 30 characters, like node names.
    return f"{prefix}-{scenario}"[:22].rstrip("-") + "-" + uuid.uuid4().hex[:6]


def run_scenario(
    file: Path,
    out_dir: Path,
    *,
    repeat: int | None = None,
    short: bool = False,
    run_prefix: str = "sc",
    say: Say = lambda _m: None,
    progress: Say = lambda _m: None,
    make_testbed: TestbedFactory = Testbed,
) -> ScenarioResult:
    text = ""
    try:
        text = file.read_text(encoding="utf-8")
        scenario = loader.parse_scenario(text, source=str(file), short=short)
    except (OSError, TestbedError) as exc:
        name = file.stem
        failed = ScenarioResult(name, "", str(file), "", 0, None, 0, time.time(), time.time())
        failed.setup_error = exc.message if isinstance(exc, TestbedError) else str(exc)
        say(f"[red]{name}: cannot load[/]: {escape(failed.setup_error)}")
        return failed
    repeats = repeat or scenario.repeat
    run = run_name(run_prefix, scenario.name)
    result = ScenarioResult(
        name=scenario.name,
        description=scenario.description,
        file=str(file),
        run=run,
        seed=scenario.seed,
        sweep=scenario.sweep.model_dump() if scenario.sweep else None,
        repeat=repeats,
        start=time.time(),
    )
    directory = out_dir / scenario.name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    say(
        f"[bold]{scenario.name}[/]: run {run}, seed {scenario.seed}, "
        f"{len(scenario.points())} point(s) x {repeats} repeat(s)"
    )
    testbed = make_testbed(run)
    setup = PointResult(scenario.name, {}, 0, scenario.seed)
    ctx = steps.Context(testbed, directory, directory / "topology.yaml", setup, say, progress)
    deadline = time.monotonic() + scenario.timeout
    made = False
    try:
        source = scenario_topology.resolve(file, scenario.topology)
        merged = scenario_topology.write_merged(
            source, scenario.overrides, scenario.seed, ctx.topology
        )
        ctx.vocabulary = scenario_topology.vocabulary(merged)
        result.topology = "topology.yaml"
        made = True
        _steps(ctx, scenario.setup, deadline, say, "setup")
        for rep in range(repeats):
            for values in scenario.points():
                point = PointResult(scenario.name, values, rep, scenario.seed, start=time.time())
                result.points.append(point)
                ctx.point = point
                say(f"  {scenario.name} \\[{point.label}]")
                try:
                    variables = {**values, "repeat": rep, "seed": scenario.seed}
                    point_steps = loader.steps_for_point(text, str(file), variables, short=short)
                    _steps(ctx, point_steps, deadline, say, point.label)
                    steps.finish_captures(ctx)
                except ScenarioTimeout:
                    raise
                except Exception as exc:
                    point.error = _describe(exc)
                    point.log.append(traceback.format_exc(limit=6))
                    say(f"  [red]error[/] {scenario.name} \\[{point.label}]: {escape(point.error)}")
                finally:
                    point.end = time.time()
                _say_point(say, scenario.name, point)
        ctx.point = setup
        _steps(ctx, scenario.teardown, deadline, say, "teardown")
    except Exception as exc:
        result.setup_error = _describe(exc)
        setup.log.append(traceback.format_exc(limit=8))
        say(f"  [red]error[/] {scenario.name}: {escape(result.setup_error)}")
    finally:
        if made:
            _collect(testbed, directory, result, say)
        try:
            if testbed.is_up() or testbed.run_dir().exists():
                testbed.down()
        except Exception as exc:
            result.teardown_error = _describe(exc)
            say(f"  [red]teardown of {run} failed[/]: {escape(result.teardown_error)}")
        result.end = time.time()
        log = [*setup.log, *(line for p in result.points for line in [f"-- {p.label}", *p.log])]
        (directory / "scenario.log").write_text("\n".join(log) + "\n", encoding="utf-8")
        result.files.update({k: f"{scenario.name}/{v}" for k, v in ctx.files.items()})
        result.files["scenario.log"] = f"{scenario.name}/scenario.log"
    return result


def _steps(
    ctx: steps.Context, items: Sequence[Step], deadline: float, say: Say, where: str
) -> None:
    for step in items:
        if time.monotonic() > deadline:
            raise ScenarioTimeout(
                f"scenario timeout reached before step {step.kind} ({where})",
                "raise the scenario's 'timeout'",
            )
        steps.run_step(ctx, step)


def _say_point(say: Say, scenario: str, point: PointResult) -> None:
    for e in point.expectations:
        mark = "[green]ok[/]" if e.passed else "[red]FAILED[/]"
        say(f"    {mark} {escape(e.message)}: {e.measure} = {e.value!s:.40} ({e.bound})")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TestbedError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _collect(testbed: Testbed, directory: Path, result: ScenarioResult, say: Say) -> None:
    """Metrics snapshot, phase log and node logs of the run, before it is taken down."""
    if not testbed.is_up():
        return
    try:
        (directory / "metrics.json").write_text(json.dumps(testbed.snapshot()), encoding="utf-8")
        result.files["metrics.json"] = f"{directory.name}/metrics.json"
    except Exception as exc:  # no Prometheus: the rest of the report still stands
        say(f"  [yellow]no metrics snapshot[/]: {escape(_describe(exc))}")
    phases = testbed.run_dir() / "phases.jsonl"
    if phases.is_file():
        shutil.copy(phases, directory / "phases.jsonl")
        result.files["phases.jsonl"] = f"{directory.name}/phases.jsonl"
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    for node in testbed.nodes():
        try:
            chunks = testbed.engine.logs(testbed.run, node, LOG_TAIL, False)
            (logs / f"{node}.log").write_bytes(b"".join(chunks))
            result.files[f"logs/{node}.log"] = f"{directory.name}/logs/{node}.log"
        except Exception:  # a node that is gone has no log to keep
            continue


__all__ = ["StepFailed", "run_scenario", "run_suite"]
