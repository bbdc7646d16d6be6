"""Helpers to run the real node process (``python -m testbed.node``) on this host, on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http(
    port: int, method: str, path: str, body: bytes = b"", host: str = "127.0.0.1"
) -> tuple[int, dict[str, Any]]:
    """One request to the control endpoint, raw, so that tests see exactly what it sends."""
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return raw_request(port, request, host)


def raw_request(port: int, data: bytes, host: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)


def thing_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "run": "unit",
        "building": "lab",
        "node": "thermostat-01",
        "role": "thing",
        "interfaces": [{"network": "mgmt", "ipv6": "::1/128"}],
        "routes": [],
        # As the planner writes them (testbed.plan.planner).
        "attributes": {
            "vendor": "acme",
            "model": "t-1000",
            "device-class": "sensor",
            "domain": "hvac",
            "pan": "floor1",
            "profile": "edhoc-oscore",
            "firmware": "1.0.0",
        },
        "forwarding": False,
        "metrics_port": free_port("::1"),
        "control_port": free_port("127.0.0.1"),
    }
    config.update(overrides)
    return config


class NodeProcess:
    def __init__(self, tmp: Path, config: dict[str, Any], state_dir: Path | None = None) -> None:
        self.config = config
        self.config_path = tmp / f"node-{config['node']}.json"
        self.config_path.write_text(json.dumps(config))
        self.state_dir = state_dir or tmp / "state"
        self.log_path = tmp / f"node-{config['node']}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def control_port(self) -> int:
        return int(self.config["control_port"])

    @property
    def metrics_port(self) -> int:
        return int(self.config["metrics_port"])

    def start(self) -> NodeProcess:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "testbed.node",
                    "--config",
                    str(self.config_path),
                    "--state-dir",
                    str(self.state_dir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}:\n{self.output()}")
            try:
                if http(self.control_port, "GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"node not ready within {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, float]:
        """Send ``sig``; return (exit code, seconds until the process was gone)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log_path.read_text()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output().splitlines() if line.strip()]
