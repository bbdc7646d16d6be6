"""`testbed scenario list|show|run` and `testbed nightly`: experiments as code.

    testbed scenario list
    testbed scenario show NAME
    testbed scenario run NAME... [--repeat N] [--out DIR] [--short]
    testbed nightly [--suite FILE] [--out DIR]

NAME is a shipped scenario (scenarios/NAME.yaml) or a path to a scenario file. Each scenario
runs in a run of its own, the next one runs whatever happened to the last, and every run is
taken down. DIR (default reports/DATE) receives junit.xml, results.json, report.html and one
directory per scenario. Exit code 15 (``ScenarioFailed``) when an expectation failed or a
scenario crashed.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from testbed import project
from testbed.cli.output import console
from testbed.errors import ScenarioError, ScenarioFailed
from testbed.scenario import junit, report_html
from testbed.scenario.loader import load_scenario
from testbed.scenario.results import SuiteResult
from testbed.scenario.runner import run_suite

SCENARIOS = project.PROJECT_ROOT / "scenarios"
DEFAULT_SUITE = SCENARIOS / "nightly.yaml"

scenario_app = typer.Typer(
    help="Experiments as code: scenario files, run with reports (JUnit, JSON, HTML).",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="report directory (default reports/DATE)")
]


def shipped() -> list[Path]:
    return sorted(p for p in SCENARIOS.glob("*.yaml") if p.name != DEFAULT_SUITE.name)


def resolve(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or "/" in name:
        if not path.is_file():
            raise ScenarioError(f"{name}: no such scenario file", "testbed scenario list")
        return path
    candidate = SCENARIOS / f"{name}.yaml"
    if not candidate.is_file():
        known = ", ".join(p.stem for p in shipped())
        raise ScenarioError(f"no scenario named {name!r}", f"shipped scenarios: {known}")
    return candidate


def default_out() -> Path:
    return Path("reports") / datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


@scenario_app.command("list")
def list_() -> None:
    """The shipped scenarios with their description, points and tags."""
    table = Table(title="scenarios (scenarios/*.yaml)", title_justify="left")
    for column in ("name", "points x repeats", "tags", "description"):
        table.add_column(column)
    for path in shipped():
        try:
            s = load_scenario(path)
        except ScenarioError as exc:
            table.add_row(path.stem, "-", "-", f"[red]invalid[/]: {escape(exc.message)}")
            continue
        table.add_row(
            s.name,
            f"{len(s.points())} x {s.repeat}",
            ", ".join(s.tags),
            escape(s.description.strip().splitlines()[0] if s.description else ""),
        )
    console.print(table)


@scenario_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="scenario name or file")],
    short: Annotated[bool, typer.Option(help="the short version (as make test runs it)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the validated scenario as JSON")] = False,
) -> None:
    """A scenario, validated, with its topology, sweep and steps."""
    path = resolve(name)
    s = load_scenario(path, short=short)
    if as_json:
        print(json.dumps(s.model_dump(exclude_defaults=True), indent=2))
        return
    console.print(f"[bold]{s.name}[/] ({path})")
    if s.description:
        console.print(escape(s.description.strip()))
    console.print(
        f"topology {s.topology}, seed {s.seed}, repeat {s.repeat}, timeout {s.timeout:g} s"
    )
    if s.overrides:
        console.print("overrides: " + escape(json.dumps(s.overrides)))
    if s.sweep:
        console.print(f"sweep {s.sweep.parameter}: {', '.join(map(str, s.sweep.values))}")
    for section, items in (("setup", s.setup), ("steps", s.steps), ("teardown", s.teardown)):
        if items:
            console.print(f"[bold]{section}[/]")
            for step in items:
                args = step.args.model_dump(exclude_defaults=True)
                console.print(f"  {step.kind}: {escape(json.dumps(args, default=str))}")


@scenario_app.command("run")
def run(
    names: Annotated[list[str], typer.Argument(help="scenario names or files")],
    repeat: Annotated[int | None, typer.Option(help="repeat each point N times", min=1)] = None,
    out: OutOption = None,
    short: Annotated[bool, typer.Option(help="the short versions (make test)")] = False,
    run_prefix: Annotated[str, typer.Option(help="prefix of the runs' names")] = "sc",
) -> None:
    """Run scenarios, each in a run of its own; write junit.xml, results.json, report.html."""
    files = [resolve(n) for n in names]
    _run(files, out or default_out(), "scenarios", repeat, short, run_prefix)


def nightly(
    suite: Annotated[
        Path | None, typer.Option(help="suite file: scenarios to run (default: all shipped)")
    ] = None,
    out: OutOption = None,
    short: Annotated[bool, typer.Option(help="the short versions")] = False,
    run_prefix: Annotated[str, typer.Option(help="prefix of the runs' names")] = "nightly",
) -> None:
    """Run the nightly suite (every shipped scenario by default) and write its reports."""
    name, files, repeat = "nightly", shipped(), None
    chosen = suite or (DEFAULT_SUITE if DEFAULT_SUITE.is_file() else None)
    if chosen is not None:
        name, files, repeat, short = _suite(chosen, short)
    _run(files, out or default_out(), name, repeat, short, run_prefix)


def _suite(path: Path, short: bool) -> tuple[str, list[Path], int | None, bool]:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read the suite: {exc}", "see docs/nightly.md") from exc
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise ScenarioError(
            f"{path}: a suite is a mapping with a 'scenarios' list", "see scenarios/nightly.yaml"
        )
    unknown = set(data) - {"name", "scenarios", "repeat", "short"}
    if unknown:
        raise ScenarioError(
            f"{path}: unknown suite keys: {', '.join(sorted(unknown))}",
            "allowed: name, scenarios, repeat, short",
        )
    files = [
        resolve(str(n)) if "/" not in str(n) else path.parent / str(n) for n in data["scenarios"]
    ]
    return (
        str(data.get("name", path.stem)),
        files,
        data.get("repeat"),
        bool(data.get("short", short)),
    )


def _run(
    files: list[Path], out: Path, suite: str, repeat: int | None, short: bool, run_prefix: str
) -> SuiteResult:
    console.print(f"{len(files)} scenario(s) -> {out}/")
    with console.status("starting") as status:
        result = run_suite(
            files,
            out,
            suite=suite,
            repeat=repeat,
            short=short,
            run_prefix=run_prefix,
            say=console.print,
            progress=lambda m: status.update(escape(m)),
        )
    write_reports(result, out)
    console.print(f"reports: {out}/report.html, {out}/junit.xml, {out}/results.json")
    for line in result.failures:
        console.print(f"[red]FAILED[/] {escape(line)}", highlight=False)
    passed = sum(s.status == "passed" for s in result.scenarios)
    console.print(
        f"{passed} of {len(result.scenarios)} scenario(s) passed in "
        f"{result.end - result.start:.0f} s"
    )
    if result.failures:
        raise typer.Exit(ScenarioFailed.exit_code)
    return result


def write_reports(result: SuiteResult, out: Path) -> None:
    result.write_json(out / "results.json")
    junit.write(result, out / "junit.xml")
    report_html.write(result, out / "report.html")


def register(app: typer.Typer) -> None:
    app.add_typer(scenario_app, name="scenario")
    app.command("nightly")(nightly)
