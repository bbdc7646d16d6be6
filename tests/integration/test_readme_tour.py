"""The README's short tour, command by command, in the README's order, on one building.

The commands are read from README.md itself, so the tour cannot drift from what is tested:
every command of the tour must have a check here (a new one fails until it gets one). What
the test changes, and why: the run name (`office` -> a unique one, and `--run` on every verb
that takes one, since other runs may be up on the same daemon), output files (into a temporary
directory), the Grafana URL and token (a FAKE Grafana, tests/unit/observe/fake_grafana.py:
Grafana itself cannot run here) and the capture's duration (2 s instead of 10).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, TESTBED, remove_run
from tests.unit.observe.fake_grafana import FakeGrafana

pytestmark = pytest.mark.integration
README = ROOT / "README.md"
GRAFANA_TOKEN = "glsa_fake_token"
# Verbs that take no --run (they do not act on a running run).
NO_RUN = {"validate", "schema", "plan", "images"}


def tour_commands(text: str) -> list[str]:
    """The commands of the README's "A short tour" block (the section's first indented block),
    comments stripped, in order."""
    section = re.search(r"^## A short tour\n(?P<body>.*?)(?=^#)", text, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## A short tour' section"
    commands: list[str] = []
    for line in section["body"].splitlines():
        if commands and line.strip() and not line.startswith("    "):
            break  # the tour is the section's first command block; later blocks are examples
        if not line.startswith("    ") or line.strip().startswith("T="):
            continue
        command = re.split(r"\s{2,}#\s", line.strip())[0].strip()
        if command:
            commands.append(command)
    return commands


@dataclass
class Tour:
    run: str
    tmp: Path
    env: dict[str, str]
    grafana: FakeGrafana
    outputs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def run_dir(self) -> Path:
        return Path(self.env["TESTBED_HOME"]) / "runs" / self.run

    def argv(self, command: str) -> tuple[list[str], Path | None]:
        """The command as the test runs it, and the file its stdout is redirected to."""
        redirect = None
        if " > " in command:
            command, target = command.split(" > ")
            redirect = self.tmp / target.strip()
        words = shlex.split(command)
        assert words[0] == "$T", command
        words = [self._word(w) for w in words[1:]]
        verb = words[0]
        if verb not in NO_RUN and "--run" not in words:
            # after the verb (and its sub-verb), before positional arguments and `--`
            at = 2 if verb in ("metrics", "dashboards", "link", "images") else 1
            words[at:at] = ["--run", self.run]
        if verb == "capture":
            words[words.index("--duration") + 1] = "2"
        return [*TESTBED, *words], redirect

    def _word(self, word: str) -> str:
        if word == "office":
            return self.run
        if word.endswith((".json", ".pcap", ".yaml")) and not word.startswith("topologies/"):
            return str(self.tmp / word)
        if word == "http://grafana:3000":
            return self.grafana.url
        if word == "...":  # --token ...
            return GRAFANA_TOKEN
        return word


@pytest.fixture(scope="module")
def tour(docker_client, node_image, cli_env, tmp_path_factory) -> Iterator[Tour]:  # type: ignore[no-untyped-def]
    run = f"tour-{uuid.uuid4().hex[:8]}"
    with FakeGrafana(GRAFANA_TOKEN) as grafana:
        state = Tour(run, tmp_path_factory.mktemp("tour"), dict(cli_env), grafana)
        try:
            yield state
        finally:
            remove_run(docker_client, run)


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _validate(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert p.stdout.startswith("ok ")


def _schema(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    schema = json.loads((t.tmp / "topology.schema.json").read_text())
    assert "things" in schema["properties"]


def _plan(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert "fd" in p.stdout  # ULA addresses


def _up(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert f"run {t.run!r} is up" in p.stdout and "commissioned: 6 of 6 things" in p.stdout


def _status(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert "thermostat-01" in p.stdout and "operational" in p.stdout
    assert "pan-floor1 carrier:" in p.stdout  # the radio PAN's ZEP carrier, named as such


def _status_json(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    nodes = {n["node"]: n for n in json.loads(p.stdout)}
    thing = nodes["thermostat-01"]
    assert thing["lifecycle"] == "operational"
    # reached at its PAN address (IID of its short address), not at its carrier address
    assert thing["data_addresses"]["pan-floor1"] != thing["addresses"]["pan-floor1"]
    assert ":ff:fe00:" in thing["data_addresses"]["pan-floor1"]


def _logs(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    first = next(line for line in p.stdout.splitlines() if line.startswith("{"))
    assert json.loads(first)["node"] == "thermostat-01"


def _exec(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert "light" in p.stdout


def _group(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    text = " ".join(p.stdout.split())  # rich wraps long lines
    assert "ff05::fd on pan-floor1" in text and "group key generation 1" in text, text


def _maintain(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    # default.yaml has no vendor cloud: keys are rotated, the firmware update is skipped
    _ok(p)
    shown = re.sub(r"[\s│]+", " ", p.stdout)  # table borders and folded cells joined
    assert "skipped firmware update: no vendor cloud" in shown, p.stdout
    record = [
        json.loads(line)
        for line in (t.run_dir() / "phases.jsonl").read_text().splitlines()
        if '"maintain"' in line
    ][-1]
    assert record["status"] == "successful"
    assert len(record["hosts"]) == 3
    for host in record["hosts"].values():
        assert host["outcome"] == "changed" and host["skipped_steps"], host


def _inventory(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert "@role_thing" in p.stdout and "thermostat-01" in p.stdout


def _link(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)


def _link_node(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    # The medium answered for lamp-01's own links, not the PAN's.
    assert "frame loss 50% on every radio link of lamp-01" in " ".join(p.stdout.split()), p.stdout


def _capture(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert (t.tmp / "floor1.pcap").read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")


def _metrics_url(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert p.stdout.strip().startswith("http://127.0.0.1:")


def _snapshot(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert json.loads((t.tmp / "office.json").read_text())


def _push(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    state = t.grafana.state
    assert state.dashboards and state.datasources
    # the run's phase runs (install, commission, maintain) as annotations
    assert any(f"run:{t.run}" in a["tags"] for a in state.annotations.values())


def _render(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    # the running run's own compose file: its containers by name, nothing minted anew
    assert f"container_name: tb-{t.run}-" in (t.tmp / "compose.yaml").read_text()


def _ok_only(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)


def _down(t: Tour, p: subprocess.CompletedProcess[str]) -> None:
    _ok(p)
    assert f"run {t.run!r} removed" in p.stdout


Check = Callable[[Tour, subprocess.CompletedProcess[str]], None]
# README command (as written, comment stripped) -> its check, and marks
CHECKS: dict[str, tuple[Check, tuple[Any, ...]]] = {
    "$T validate topologies/default.yaml": (_validate, ()),
    "$T schema > topology.schema.json": (_schema, ()),
    "$T plan -t topologies/minimal.yaml": (_plan, ()),
    "$T images build": (_ok_only, ()),
    "$T up -t topologies/default.yaml --run office": (_up, ()),
    "$T status": (_status, ()),
    "$T status --json": (_status_json, ()),
    "$T logs thermostat-01": (_logs, ()),
    "$T exec backend -- python3 -m testbed.node.probe action read "
    '\'{"thing": "lamp-01", "resource": "light"}\'': (_exec, ()),
    "$T group floor1 light '{\"on\": false}'": (_group, ()),
    "$T phase maintain --limit vendor_acme": (_maintain, ()),
    "$T inventory --graph": (_inventory, ()),
    "$T link set pan-floor1 --loss 20%": (_link, ()),
    "$T link set pan-floor1 --node lamp-01 --loss 50%": (_link_node, ()),
    "$T link set internet --delay 30ms --jitter 5ms": (_link, ()),
    "$T capture pan-floor1 -o floor1.pcap --duration 10": (_capture, ()),
    "$T metrics url": (_metrics_url, ()),
    "$T metrics snapshot -o office.json": (_snapshot, ()),
    "$T dashboards push --url http://grafana:3000 --token ...": (_push, ()),
    "$T render -o compose.yaml": (_render, ()),
    "$T down": (_down, ()),
}
COMMANDS = tour_commands(README.read_text(encoding="utf-8"))


def test_every_tour_command_has_a_check() -> None:
    assert COMMANDS, "no commands found in the README's tour"
    missing = [c for c in COMMANDS if c not in CHECKS]
    assert not missing, f"README tour commands without a check in this test: {missing}"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(c, marks=CHECKS[c][1] if c in CHECKS else (), id=f"{i:02d}-{c[:40]}")
        for i, c in enumerate(COMMANDS)
    ],
)
def test_tour_command(tour: Tour, command: str) -> None:
    check = CHECKS[command][0]
    argv, redirect = tour.argv(command)
    proc = subprocess.run(
        argv, env=tour.env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    if redirect is not None:
        redirect.write_text(proc.stdout)
    tour.outputs[command] = proc
    check(tour, proc)
