"""The security core against real containers: PKI, vouchers, trust center, EDHOC/OSCORE.

default.yaml comes up commissioned and the backend reads every thing over OSCORE through the
border router; refusals are proven thing by thing; the trust center survives a SIGKILL in the
middle of bootstrapping twenty things.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from testbed import bringup
from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import action, metrics, sql, state, wait_for

pytestmark = pytest.mark.integration
FIXTURES = ROOT / "tests" / "fixtures" / "topologies" / "integration"
PRIMARY = {
    "thermostat": "temperature",
    "luminaire": "light",
    "smoke-detector": "alarm",
}


@pytest.fixture(scope="module")
def office(docker_client, node_image, cli_env) -> Iterator[tuple[DockerEngine, str]]:  # type: ignore[no-untyped-def]
    run = "it-office"
    remove_run(docker_client, run)
    up = run_cli(["up", "-t", str(ROOT / "topologies" / "default.yaml"), "--run", run], cli_env)
    assert "commissioned: 6 of 6 things" in up.stdout, up.stdout
    backend = DockerEngine(docker_client)
    try:
        # The backend learns things from the trust center every 2 s: let it catch up.
        wait_for(
            lambda: len(state(backend, run, "backend")["backend"]["things"]) == 6,
            30,
            "the backend to list all six things",
        )
        yield backend, run
    finally:
        run_cli(["down", "--run", run], cli_env, check=False)
        remove_run(docker_client, run)


def test_every_thing_is_operational_in_its_domain(office, cli_env) -> None:  # type: ignore[no-untyped-def]
    _, run = office
    status = json.loads(run_cli(["status", "--run", run, "--json"], cli_env).stdout)
    things = [s for s in status if s["role"] == "thing"]
    assert len(things) == 6
    for entry in things:
        assert entry["lifecycle"] == "operational", entry
        assert entry["attributes"]["domain"] == "facility"


def test_the_trust_center_registered_each_thing_once(office) -> None:  # type: ignore[no-untyped-def]
    backend, run = office
    tc = state(backend, run, "tc-facility")
    assert tc["things"].get("enrolled") == 6 and tc["certificates_issued"] >= 6
    rows = sql(backend, run, "tc-facility", "SELECT serial, state, ldevid_serial FROM things")
    assert len(rows) == 6 and {r[1] for r in rows} == {"enrolled"}
    assert len({r[2] for r in rows}) == 6  # one distinct LDevID each


def test_the_backend_reads_every_thing_over_oscore(office) -> None:  # type: ignore[no-untyped-def]
    backend, run = office

    def all_read() -> dict[str, Any] | None:
        things = state(backend, run, "backend")["backend"]["things"]
        ok = {
            name: t
            for name, t in things.items()
            if any(r.get("outcome") == "ok" and r.get("protected") for r in t["last"].values())
        }
        return ok if len(ok) == 6 else None

    wait_for(all_read, 60, "the backend to read all six things")
    for entry in [s for s in backend.status(run) if s.role == "thing"]:
        resource = PRIMARY[entry.attributes["device-class"]]
        answer = action(backend, run, "backend", "read", thing=entry.node, resource=resource)
        assert answer["code"] == "2.05" and answer["protected"] is True, answer


def test_the_backend_commands_an_actuator_end_to_end(office) -> None:  # type: ignore[no-untyped-def]
    backend, run = office
    put = action(
        backend, run, "backend", "write", thing="thermostat-01", resource="setpoint", payload=21.5
    )
    assert put["code"] == "2.04", put
    got = action(backend, run, "backend", "read", thing="thermostat-01", resource="setpoint")
    assert got["value"] == 21.5
    refused = action(
        backend, run, "backend", "write", thing="thermostat-01", resource="setpoint", payload=99
    )
    assert refused["code"] == "4.22"  # out of the thermostat's range


def test_edhoc_message_sizes_agree_with_rfc_9529(office) -> None:  # type: ignore[no-untyped-def]
    """Method 3, credentials by key id (one-byte kids), measured on the thing's socket.

    RFC 9529 (method 3): message_1 37, message_2 45, message_3 19 bytes. Documented difference:
    aiocoap's initiator always appends one EAD item to message_1 (1 byte more, 38);
    tests/unit/node/bootstrap checks that this item is the whole difference.
    """
    backend, run = office
    report = state(backend, run, "thermostat-01")["bootstrap"]
    sizes = {m["message"]: m["message_bytes"] for m in report["messages"] if m["message_bytes"]}
    assert sizes["edhoc_message_1"] == 37 + 1
    assert sizes["edhoc_message_2"] == 45
    assert sizes["edhoc_message_3+oscore_request"] == 19
    assert report["outcome"] == "success"


def test_an_unprotected_request_is_refused(office) -> None:  # type: ignore[no-untyped-def]
    backend, run = office
    before = state(backend, run, "lamp-01")["requests"]["refused"].get("unprotected", 0)
    answer = action(backend, run, "backend", "probe-unprotected", thing="lamp-01", resource="light")
    assert answer["code"] == "4.01", answer
    # Refused before any handler: the thing counts it as an unprotected refusal.
    after = state(backend, run, "lamp-01")["requests"]["refused"].get("unprotected", 0)
    assert after == before + 1


def test_a_replayed_oscore_request_is_refused(office) -> None:  # type: ignore[no-untyped-def]
    backend, run = office
    answer = action(backend, run, "backend", "probe-replay", thing="smoke-01", resource="alarm")
    assert answer["original"]["code"] == "2.05", answer
    assert answer["replay"]["code"] == "4.01", answer
    assert "replay" in str(answer["replay"]).lower()
    refused = state(backend, run, "smoke-01")["requests"]["refused"]
    assert refused.get("replay", 0) >= 1  # stopped by the replay window, not by a handler


# -- refusals: one thing each, next to a genuine one ---------------------------------------------


UP_OUTPUT: dict[str, str] = {}  # run -> what its `testbed up` printed


@pytest.fixture(scope="module")
def refusals(
    docker_client, node_image, cli_env
) -> Iterator[tuple[DockerEngine, str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    run = "it-refusals"
    remove_run(docker_client, run)
    up = run_cli(["up", "-t", str(FIXTURES / "refusals.yaml"), "--run", run], cli_env, check=False)
    try:
        # Three things are refused: `up` says so (exit 10) and leaves the run up to look at.
        assert up.returncode == 10, up.stdout + up.stderr
        assert "3 of 4 things are not operational" in up.stderr
        UP_OUTPUT[run] = up.stdout
        backend = DockerEngine(docker_client)
        yield backend, run, state(backend, run, "tc-facility")
    finally:
        run_cli(["down", "--run", run], cli_env, check=False)
        remove_run(docker_client, run)


def _refused(refusals: Any, thing: str, reason: str) -> None:
    backend, run, _ = refusals
    mine = state(backend, run, thing)
    assert mine["lifecycle"] == "failed" and mine["reason"] == reason, mine
    serial = backend.status(run)  # the thing's serial is a label of its container
    serial_of = {s.node: s.attributes["serial"] for s in serial if s.role == "thing"}
    rows = sql(
        backend,
        run,
        "tc-facility",
        f"SELECT reason FROM refusals WHERE serial = '{serial_of[thing]}'",
    )
    assert [reason] in rows, rows
    registered = sql(
        backend, run, "tc-facility", f"SELECT state FROM things WHERE serial = '{serial_of[thing]}'"
    )
    assert registered == [["refused"]]
    listed = state(backend, run, "backend")["backend"]["things"]
    assert thing not in listed  # the backend never learns a context for it


def test_a_thing_of_an_untrusted_vendor_is_refused(refusals) -> None:  # type: ignore[no-untyped-def]
    _refused(refusals, "untrusted-01", "vendor-not-trusted")


def test_a_voucher_naming_another_owner_is_refused(refusals) -> None:  # type: ignore[no-untyped-def]
    _refused(refusals, "foreign-01", "voucher-foreign-owner")


def test_an_idevid_from_another_ca_is_refused(refusals) -> None:  # type: ignore[no-untyped-def]
    _refused(refusals, "counterfeit-01", "idevid-invalid")


REFUSAL_REASONS = {
    "untrusted-01": "vendor-not-trusted",
    "foreign-01": "voucher-foreign-owner",
    "counterfeit-01": "idevid-invalid",
}


def test_up_and_status_say_why_each_thing_failed(refusals, cli_env) -> None:  # type: ignore[no-untyped-def]
    _, run, _ = refusals
    shown = run_cli(["status", "--run", run], cli_env).stdout
    for thing, reason in REFUSAL_REASONS.items():
        assert f"{thing}: failed {reason}" in UP_OUTPUT[run], UP_OUTPUT[run]
        row = next(line for line in shown.splitlines() if f" {thing} " in line)
        assert f"failed {reason}" in row, row


def test_the_genuine_thing_next_to_them_is_admitted(refusals) -> None:  # type: ignore[no-untyped-def]
    backend, run, _ = refusals
    assert state(backend, run, "genuine-01")["lifecycle"] == "operational"


def test_things_bootstrap_through_return_routability(refusals) -> None:  # type: ignore[no-untyped-def]
    # The topology switches both defences on: each thing's message_1 was first answered with
    # 4.01 + Echo (no state kept), and the thing repeated it with the Echo value.
    backend, run, tc_state = refusals
    assert tc_state["defences"]["return_routability"] is True
    assert tc_state["defences"]["rate_limit_per_source"] == 5
    gate = metrics(backend, run, "tc-facility", "testbed_tc_")
    enabled = 'testbed_tc_defence_enabled{defence="return_routability"}'
    assert gate[enabled] == 1.0
    challenged = gate['testbed_tc_handshake_gate_total{outcome="challenged"}']
    verified = gate['testbed_tc_handshake_gate_total{outcome="echo-verified"}']
    assert verified >= 4 and challenged >= verified, gate  # four things, each at least once
    assert gate["testbed_tc_half_open_handshakes"] == 0.0


# -- the trust center killed in the middle of bootstrapping twenty things -------------------------


def test_trust_center_sigkill_mid_bootstrap(
    docker_client, node_image, cli_env, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    run = "it-crash"
    remove_run(docker_client, run)
    monkeypatch.setenv("TESTBED_HOME", cli_env["TESTBED_HOME"])
    plan, text = bringup.plan_for(FIXTURES / "twenty.yaml", run)
    backend = DockerEngine(docker_client)
    errors: list[BaseException] = []

    def bring_up() -> None:
        try:
            # Its own Docker client: the main thread polls the trust center meanwhile.
            bringup.up(DockerEngine(), plan, text, node_image, lambda *_: None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=bring_up)
    worker.start()
    try:

        def enrolled_some() -> int:
            found = docker_client.containers.list(
                filters={"label": [f"testbed.run={run}", "testbed.node=tc-facility"]}
            )
            if not found:
                return 0
            answer = backend.node_state(run, "tc-facility") or {}
            return int(((answer.get("state") or {}).get("things") or {}).get("enrolled", 0))

        at_kill = wait_for(enrolled_some, 120, "the first enrollment", interval=0.05)
        tc = docker_client.containers.list(
            filters={"label": [f"testbed.run={run}", "testbed.node=tc-facility"]}
        )[0]
        tc.kill(signal="SIGKILL")
        assert at_kill < 20, f"all {at_kill} things enrolled before the kill: not mid-bootstrap"
        worker.join(300)
        assert not errors, "".join(__import__("traceback").format_exception(errors[0]))
        tc.start()  # same volume: the registry survives

        def all_operational() -> bool:
            outcomes = bringup.wait_commissioned(backend, plan, lambda *_: None, timeout=5)
            return all(state == "operational" for state, _ in outcomes.values())

        wait_for(all_operational, 240, "every thing to end operational")
        rows = sql(backend, run, "tc-facility", "SELECT serial, state, ldevid_serial FROM things")
        things = [n for n in plan.nodes if n.role == "thing"]
        assert len(rows) == len(things) == 20  # exactly one record per thing
        assert {r[1] for r in rows} == {"enrolled"}
        certificates = sql(backend, run, "tc-facility", "SELECT serial FROM certificates")
        serials = [c[0] for c in certificates]
        assert len(serials) == len(set(serials))  # no certificate serial issued twice
        assert {r[2] for r in rows} <= set(serials)
        # Each thing holds the certificate the registry says it has.
        for node in things:
            held = backend.exec(
                run,
                node.name,
                [
                    "python3",
                    "-c",
                    "from cryptography import x509; print(x509.load_der_x509_certificate("
                    "open('/var/lib/testbed/ldevid.crt.der','rb').read()).serial_number)",
                ],
            )
            serial = node.config.attributes["serial"]
            expected = [r[2] for r in rows if r[0] == serial]
            assert int(held.output) == expected[0], node.name
    finally:
        worker.join(60)
        bringup.down(backend, run) if backend.runs().get(run) else None
        remove_run(docker_client, run)
