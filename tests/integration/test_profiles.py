"""The three bootstrap profiles in one building, against real containers on a radio PAN.

edhoc-01 (edhoc-oscore), cert-01 (dtls-cert, its model's profile) and psk-01 (dtls-psk, chosen
per thing) commission; the backend then reads each over OSCORE, whatever the bootstrap was. A
capture of the PAN during a dtls-cert bootstrap decodes in tshark as DTLS (through 6LoWPAN
reassembly) without a malformed packet, and the DTLS things bootstrap again at 10 % frame loss.
The security core's refusals are proven per profile at unit level (tests/unit/node/trust_center).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, TESTBED, remove_run, run_cli
from tests.integration.nodes import action, sql, state, wait_for

pytestmark = pytest.mark.integration
TOPOLOGY = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "profiles.yaml"
RUN = "it-profiles"
ROUTER = "br1"
PROFILES = {"edhoc-01": "edhoc-oscore", "cert-01": "dtls-cert", "psk-01": "dtls-psk"}
TSHARK = shutil.which("tshark")


@pytest.fixture(scope="module")
def building(docker_client, node_image, cli_env) -> Iterator[tuple[DockerEngine, dict[str, str]]]:  # type: ignore[no-untyped-def]
    remove_run(docker_client, RUN)
    up = run_cli(["up", "-t", str(TOPOLOGY), "--run", RUN], cli_env)
    assert "commissioned: 3 of 3 things" in up.stdout, up.stdout
    try:
        yield DockerEngine(docker_client), cli_env
    finally:
        run_cli(["down", "--run", RUN], cli_env, check=False)
        remove_run(docker_client, RUN)


def _report(backend: DockerEngine, thing: str) -> dict[str, Any]:
    report: dict[str, Any] = state(backend, RUN, thing)["bootstrap"]
    return report.get("last") or report


def test_each_thing_bootstrapped_with_its_profile(building) -> None:  # type: ignore[no-untyped-def]
    backend, env = building
    status = json.loads(run_cli(["status", "--run", RUN, "--json"], env).stdout)
    things = {s["node"]: s for s in status if s["role"] == "thing"}
    assert {n: s["attributes"]["profile"] for n, s in things.items()} == PROFILES
    for name, profile in PROFILES.items():
        assert things[name]["lifecycle"] == "operational"
        report = _report(backend, name)
        assert (report["profile"], report["outcome"]) == (profile, "success"), report
        assert report["oscore_contexts"] == ["backend:backend", "group"]
        names = [m["message"] for m in report["messages"] if m["direction"] == "sent"]
        if profile.startswith("dtls-"):
            # Flights 1, 3 and 5 of RFC 6347 4.2.4 (cookie exchange on), then CoAP inside.
            assert names[:3] == [
                "dtls_client_hello",
                "dtls_client_hello_cookie",
                "dtls_client_finished",
            ]
            assert "dtls_application_data" in names
    rows = sql(backend, RUN, "tc-facility", "SELECT state, ldevid_serial FROM things")
    assert len(rows) == 3 and {r[0] for r in rows} == {"enrolled"}
    assert state(backend, RUN, "tc-facility")["coaps_port"] == 5684


def test_the_backend_reads_every_thing_over_oscore(building) -> None:  # type: ignore[no-untyped-def]
    backend, _ = building
    wait_for(
        lambda: len(state(backend, RUN, "backend")["backend"]["things"]) == 3,
        30,
        "the backend to list the three things",
    )
    for thing in PROFILES:
        resource = "light" if thing == "cert-01" else "temperature"
        answer = action(backend, RUN, "backend", "read", thing=thing, resource=resource)
        assert answer["code"] == "2.05" and answer["protected"] is True, answer


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (Debian package tshark)")
def test_a_dtls_cert_bootstrap_on_the_pan_decodes_in_tshark(building, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend, env = building
    pcap = tmp_path / "dtls-cert.pcap"
    capture = subprocess.Popen(
        [*TESTBED, "capture", "pan0", "-o", str(pcap), "--duration", "12", "--run", RUN],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # The capture runs on the router once its state lists the PAN (not after a guessed delay).
    deadline = time.monotonic() + 60

    def capturing() -> bool:
        state = backend.node_state(RUN, ROUTER) or {}
        return "pan0" in state.get("links", {}).get("captures", [])

    while not capturing():
        assert capture.poll() is None, capture.communicate()
        assert time.monotonic() < deadline, "the capture did not start on the router"
        time.sleep(0.2)
    answer = action(backend, RUN, "cert-01", "rebootstrap", timeout=60)
    assert answer["last"]["outcome"] == "success", answer
    out, err = capture.communicate(timeout=90)
    assert capture.returncode == 0, err
    context = out.split("6lowpan.context0:")[1].split()[0]
    assert TSHARK is not None

    def tshark(*args: str) -> str:
        command = [TSHARK, "-r", str(pcap), "-n", "-o", f"6lowpan.context0:{context}", *args]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=True
        ).stdout

    summary = [line for line in tshark().splitlines() if "DTLS" in line]
    flights = "\n".join(summary)
    for message in (
        "Client Hello",
        "Hello Verify Request",
        "Server Hello, Certificate, Server Key Exchange, Certificate Request, Server Hello Done",
        "Certificate, Client Key Exchange, Certificate Verify, Change Cipher Spec,"
        " Encrypted Handshake Message",  # Finished under the new keys
        "Change Cipher Spec, Encrypted Handshake Message",
        "Application Data",
    ):
        assert message in flights, (message, flights)
    assert tshark("-Y", "_ws.malformed").strip() == ""


def test_a_dtls_psk_thing_renews_its_ldevid_over_dtls(building) -> None:  # type: ignore[no-untyped-def]
    backend, _ = building
    answer = action(backend, RUN, "psk-01", "rekey", timeout=60)
    assert answer["changed"] is True and answer["lifecycle"] == "operational", answer
    assert answer["ldevid_serial"] != answer["previous_ldevid_serial"]
    resources = sql(backend, RUN, "tc-facility", "SELECT resource FROM bootstraps")
    assert ["/.well-known/est/sren"] in resources


def test_the_dtls_things_bootstrap_again_at_ten_percent_frame_loss(building) -> None:  # type: ignore[no-untyped-def]
    backend, env = building
    run_cli(["link", "set", "pan-pan0", "--loss", "10%", "--run", RUN], env)
    try:
        for thing in ("cert-01", "psk-01"):
            answer = action(backend, RUN, thing, "rebootstrap", timeout=180)
            assert answer["last"]["outcome"] == "success", answer
            assert answer["lifecycle"] == "operational"
    finally:
        run_cli(["link", "reset", "pan-pan0", "--run", RUN], env, check=False)
