"""JUnit XML, as CI systems read it: one test suite per scenario, one test case per point and
repeat. A failed expectation is a <failure>, a crashed step an <error>; a scenario that could
not even be set up is one test case with an <error>."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from testbed.scenario.results import SuiteResult


def render(suite: SuiteResult) -> bytes:
    root = ET.Element("testsuites", name=suite.suite)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for scenario in suite.scenarios:
        element = ET.SubElement(
            root,
            "testsuite",
            name=scenario.name,
            timestamp=_iso(scenario.start),
            time=f"{scenario.end - scenario.start:.3f}",
        )
        props = ET.SubElement(element, "properties")
        for key, value in (
            ("seed", scenario.seed),
            ("run", scenario.run),
            ("commit", suite.commit),
            ("file", scenario.file),
        ):
            ET.SubElement(props, "property", name=key, value=str(value))
        counts = {"tests": 0, "failures": 0, "errors": 0}
        cases = scenario.points or []
        if scenario.setup_error or not cases:
            case = ET.SubElement(
                element,
                "testcase",
                classname=f"scenario.{scenario.name}",
                name="setup",
                time=f"{scenario.end - scenario.start:.3f}",
            )
            counts["tests"] += 1
            if scenario.setup_error:
                error = ET.SubElement(case, "error", message=scenario.setup_error[:500])
                error.text = scenario.setup_error
                counts["errors"] += 1
        for point in cases:
            case = ET.SubElement(
                element,
                "testcase",
                classname=f"scenario.{scenario.name}",
                name=point.label,
                time=f"{point.end - point.start:.3f}",
            )
            counts["tests"] += 1
            failed = [e for e in point.expectations if not e.passed]
            if point.error is not None:
                error = ET.SubElement(case, "error", message=point.error[:500])
                error.text = "\n".join(point.log[-20:])
                counts["errors"] += 1
            elif failed:
                lines = [e.describe(scenario.name, point.label) for e in failed]
                failure = ET.SubElement(case, "failure", message=lines[0][:500])
                failure.text = "\n".join(lines)
                counts["failures"] += 1
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(
                [f"{m.name} = {m.value} {m.unit}".rstrip() for m in point.measurements]
                + [
                    f"expect {e.measure} {e.bound}: {'ok' if e.passed else 'FAILED'}"
                    for e in point.expectations
                ]
            )
        for key, value in counts.items():
            element.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{suite.end - suite.start:.3f}")
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text


def write(suite: SuiteResult, path: Path) -> None:
    path.write_bytes(render(suite))


def _iso(seconds: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
