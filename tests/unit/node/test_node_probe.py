"""``python3 -m testbed.node.probe``: ready and reach, as the host calls them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testbed.contracts import node_config as config
from testbed.node import probe
from tests.unit.node.node_harness import ROOT, NodeProcess, free_port


def run_probe(*args: str) -> tuple[int, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "testbed.node.probe", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_ready_against_a_ready_node(running_thing: NodeProcess) -> None:
    assert run_probe("ready", "--port", str(running_thing.control_port)) == (0, {"ready": True})


def test_ready_reads_the_port_from_node_json(running_thing: NodeProcess) -> None:
    code, out = run_probe("ready", "--config", str(running_thing.config_path))
    assert (code, out) == (0, {"ready": True})


def test_state_and_actions(running_thing: NodeProcess) -> None:
    port = str(running_thing.control_port)
    code, state = run_probe("state", "--port", port)
    assert code == 0 and state["role"] == "thing"  # type: ignore[index]
    code, answer = run_probe("action", "transition", '{"to": "bootstrapping"}', "--port", port)
    assert code == 0 and answer["result"]["to"] == "bootstrapping"  # type: ignore[index]
    code, answer = run_probe("action", "no-such-action", "--port", port)
    assert code == 1 and "error" in answer  # type: ignore[operator]
    code, answer = run_probe("action", "transition", "{not json", "--port", port)
    assert code == 2 and "not JSON" in answer["error"]  # type: ignore[index]


def test_ready_against_nothing() -> None:
    code, out = run_probe("ready", "--port", str(free_port()))
    assert code == 1
    assert isinstance(out, dict)
    assert out["ready"] is False
    assert "refused" in out["error"]


def test_reach_loopback() -> None:
    code, out = run_probe("reach", "::1", "--count", "2", "--timeout", "1")
    assert code == 0
    assert isinstance(out, dict)
    assert (out["sent"], out["received"]) == (2, 2)
    assert all(rtt >= 0 for rtt in out["rtt_ms"])


def test_reach_unreachable_fails() -> None:
    # 100::/64 is the IPv6 discard prefix (RFC 6666): nothing ever answers.
    code, out = run_probe("reach", "100::1", "--count", "1", "--timeout", "0.3")
    assert code == 1
    assert isinstance(out, dict)
    assert out["received"] == 0


def test_reach_bad_address() -> None:
    code, out = run_probe("reach", "not-an-address", "--count", "1")
    assert code == 1
    assert isinstance(out, dict)
    assert "error" in out


def test_probe_stays_light() -> None:
    # The host runs it through docker exec for every node while bringing a building up.
    code = (
        "import sys, testbed.node.probe\n"
        "heavy = {'asyncio', 'prometheus_client', 'cryptography', 'aiocoap',"
        " 'testbed.contracts.node_config', 'testbed.node.app', 'dataclasses'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


def test_probe_defaults_match_the_config_contract() -> None:
    assert probe.CONTROL_PORT == config.CONTROL_PORT
    assert Path(probe.CONFIG_FILE) == config.CONFIG_FILE


def test_ready_waits_for_an_endpoint_that_comes_up_later() -> None:
    """--wait: one probe process asks until the endpoint answers 200 (the host's readiness wait
    uses one exec per node instead of one per poll)."""
    import http.server
    import threading
    import time

    port = free_port()

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ready": true}'
            self.send_response(200 if self.path == "/ready" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    servers: list[http.server.ThreadingHTTPServer] = []

    def serve() -> None:  # nothing listens on the port until then: connections are refused
        servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", port), Ready))
        servers[0].serve_forever()

    starter = threading.Timer(0.5, serve)
    try:
        started = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "testbed.node.probe",
                "ready",
                "--port",
                str(port),
                "--wait",
                "20",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        starter.start()
        out, _ = proc.communicate(timeout=30)
        assert (proc.returncode, json.loads(out)) == (0, {"ready": True})
        assert servers  # it was answered by the server that came up later
        assert time.monotonic() - started < 15  # it returned when ready, not at the deadline
    finally:
        starter.cancel()
        for server in servers:
            server.shutdown()
            server.server_close()
        starter.join(timeout=5)


def test_ready_wait_gives_up_after_its_deadline() -> None:
    import time

    started = time.monotonic()
    code, out = run_probe("ready", "--port", str(free_port()), "--wait", "0.5")
    assert code == 1 and isinstance(out, dict) and out["ready"] is False
    assert time.monotonic() - started >= 0.5
