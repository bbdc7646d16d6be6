"""The runner's control flow with a FAKE testbed (the real one is exercised against Docker in
tests/integration/test_scenarios.py): a crash is an error and the next scenario runs, a failed
expectation fails with scenario, point, value and bound, every run is taken down, and the
three reports parse."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from testbed.errors import StepFailed
from testbed.scenario import junit, report_html
from testbed.scenario.adapter import UpOutcome
from testbed.scenario.runner import run_suite

ROOT = Path(__file__).resolve().parents[3]


class FakeTestbed:
    """NOT a testbed: records calls; a thing's bootstrap succeeds with probability 1 - loss."""

    downs: ClassVar[list[str]] = []

    def __init__(self, run: str) -> None:
        self.run, self.up_now, self.loss = run, False, 0.0
        self.engine = self

    def up(self, topology: Path, *, commission: bool, timeout: float) -> UpOutcome:
        assert topology.is_file()
        if "crash" in self.run:
            raise StepFailed("the fake cannot bring this up", "")
        self.up_now = True
        return UpOutcome(topology.parent, {"t1": ("operational", ""), "t2": ("operational", "")})

    def down(self, *, keep_files: bool = False) -> None:
        self.up_now = False
        FakeTestbed.downs.append(self.run)

    def is_up(self) -> bool:
        return self.up_now

    def run_dir(self) -> Path:
        return Path("/nonexistent")

    def link_set(self, link: str, given: dict[str, Any]) -> dict[str, Any]:
        self.loss = float(given["loss"] or 0)
        return {}

    def link_reset(self, link: str) -> dict[str, Any]:
        self.loss = 0.0
        return {}

    def things(self) -> list[str]:
        return ["t1", "t2"]

    def nodes(self, role: str | None = None) -> list[str]:
        return []

    def action(self, node: str, action: str, params: dict[str, Any], timeout: float = 30) -> Any:
        return {}

    def state(self, node: str) -> dict[str, Any]:
        ok = self.loss < 0.25 or node == "t1"
        return {
            "lifecycle": "operational" if ok else "failed",
            "bootstrap": {
                "duration_s": 1.0 + self.loss,
                "messages": [{"bytes": 100}],
                "radio": {"frames_sent": 10},
            },
        }

    def snapshot(self) -> dict[str, Any]:
        return {}


SWEEP = """\
name: {name}
topology: ../topologies/minimal.yaml
seed: 3
sweep: {{parameter: loss, values: [0.0, 0.1, 0.3]}}
steps:
  - link_set: {{link: pan-pan0, loss: "${{loss}}"}}
  - bootstrap: {{name: boot}}
  - expect: {{measure: boot.success_rate, min: 0.9, message: things bootstrap}}
"""


def test_a_suite_keeps_going_tears_down_and_reports(tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "minimal.yaml").write_text(
        (ROOT / "topologies" / "minimal.yaml").read_text()
    )
    files = []
    for name in ("crash", "sweep", "broken"):
        path = scenarios / f"{name}.yaml"
        path.write_text(SWEEP.format(name=name) if name != "broken" else "name: [\n")
        files.append(path)
    FakeTestbed.downs = []
    out = tmp_path / "out"
    result = run_suite(files, out, suite="t", make_testbed=FakeTestbed)  # type: ignore[arg-type]
    junit.write(result, out / "junit.xml")
    report_html.write(result, out / "report.html")

    statuses = {s.name: s.status for s in result.scenarios}
    assert statuses == {"crash": "error", "sweep": "failed", "broken": "error"}
    # every scenario that made a run took it down (the crashed one too: nothing was up)
    assert [r.split("-")[1] for r in FakeTestbed.downs] == ["sweep"]
    failure = next(line for line in result.failures if line.startswith("sweep"))
    assert failure == (
        "sweep [loss=0.3, repeat 0]: things bootstrap: boot.success_rate = 0.5, expected >= 0.9"
    )

    suites = ET.parse(out / "junit.xml").getroot()
    assert (suites.get("tests"), suites.get("failures"), suites.get("errors")) == ("5", "1", "2")
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    assert cases["loss=0.3, repeat 0"].find("failure") is not None
    assert cases["loss=0.0, repeat 0"].find("failure") is None

    data = json.loads((out / "results.json").read_text())
    sweep = next(s for s in data["scenarios"] if s["name"] == "sweep")
    assert [p["point"] for p in sweep["points"]] == [{"loss": 0.0}, {"loss": 0.1}, {"loss": 0.3}]
    assert all(p["seed"] == 3 for p in sweep["points"])
    assert data["not_deterministic"]

    class Images(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.images: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                self.images.append(dict(attrs)["src"] or "")

    parser = Images()
    parser.feed((out / "report.html").read_text())
    assert parser.images and all(i.startswith("data:image/png;base64,") for i in parser.images)
