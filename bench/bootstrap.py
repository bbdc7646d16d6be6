"""Benchmark: N things bootstrap (edhoc-oscore) against ONE trust center.

The trust center is the real node process (`python -m testbed.node`, role trust_center) on
this host, with credentials minted by testbed.manufacture exactly as `testbed up` mints them.
The things are the real thing-side profile (EdhocOscoreProfile: EDHOC, OSCORE, CSR to
/.well-known/est/sen), run from this process with bounded concurrency so that the client side
does not dominate. Prints per-thing median and p95 duration and bytes, and the trust center's
CPU seconds (utime + stime from /proc) and peak memory (VmHWM).

    .venv/bin/python bench/bootstrap.py [--sizes 10 50 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from testbed import manufacture, pki, rundir
from testbed.node import material as M
from testbed.node.bootstrap.edhoc_oscore import EdhocOscoreProfile
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapResult,
    FactoryIdentity,
    Outcome,
    TrustCenterRef,
)
from testbed.plan import make_plan
from testbed.topology import parse_topology

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def topology(n: int) -> str:
    text = (ROOT / "topologies" / "minimal.yaml").read_text()
    return text.replace("  - name: thermostat-01\n", f"  - name: 't{{n:03d}}'\n    count: {n}\n")


def free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_trust_center(
    run_dir: Path, tc_name: str, state_dir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    node_dir = run_dir / "nodes" / tc_name
    config = json.loads((node_dir / "node.json").read_text())
    control, metrics = free_port(), free_port()
    # On the host the planned container addresses do not exist: serve mgmt on loopback.
    config["interfaces"] = [
        {"network": "mgmt", "ipv6": "::1/128"},
        {"network": "backbone", "ipv6": "::1/128"},
    ]
    config["routes"] = []
    config["control_port"], config["metrics_port"] = control, metrics
    (node_dir / "node.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed.node",
            "--config",
            str(node_dir / "node.json"),
            "--state-dir",
            str(state_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{control}/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, control
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the trust center did not become ready")


async def bootstrap_all(
    run_dir: Path, things: list[str], concurrency: int
) -> list[BootstrapResult]:
    gate = asyncio.Semaphore(concurrency)
    profile = EdhocOscoreProfile()

    async def one(name: str) -> BootstrapResult:
        root = run_dir / "nodes" / name
        device = pki.load_device(root / M.IDENTITY)
        csr = pki.make_csr(device, pki.keys.generate()).public_bytes(serialization.Encoding.DER)
        ctx = BootstrapContext(
            node=name,
            identity=FactoryIdentity(
                private_key=root / M.DEVICE_KEY_PEM,
                idevid=root / M.IDEVID_DER,
                ccs=root / M.DEVICE_CCS,
            ),
            trust_center=TrustCenterRef(
                uri=f"coap://[::1]:{M.COAP_PORT}", ccs=root / M.TRUST_CENTER_CCS
            ),
            csr_der=csr,
            timeout_s=60.0,
        )
        async with gate:
            return await profile.bootstrap(ctx)

    return list(await asyncio.gather(*(one(t) for t in things)))


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(
        f"{'N':>4} {'ok':>4} {'median ms':>10} {'p95 ms':>8} {'bytes out':>10} {'bytes in':>9} "
        f"{'tc cpu s':>9} {'tc peak MB':>11} {'wall s':>7}"
    )
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-bootstrap-") as tmp:
            run_dir = Path(tmp) / "run"
            plan = make_plan(parse_topology(topology(n)), f"bench{n}")
            rundir.write_run_dir(plan, run_dir, "")
            manufacture.mint(plan, run_dir)
            tc = next(x.name for x in plan.nodes if x.role == "trust_center")
            state = Path(tmp) / "tc-state"
            state.mkdir()
            proc, _ = start_trust_center(run_dir, tc, state)
            try:
                cpu0 = cpu_seconds(proc.pid)
                things = [x.name for x in plan.nodes if x.role == "thing"]
                start = time.perf_counter()
                results = asyncio.run(bootstrap_all(run_dir, things, args.concurrency))
                wall = time.perf_counter() - start
                cpu = cpu_seconds(proc.pid) - cpu0
                peak = peak_rss_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(10)
        ok = [r for r in results if r.outcome is Outcome.SUCCESS]
        durations = [r.duration_s * 1000 for r in ok] or [float("nan")]
        sent = [r.total("sent")[0] for r in ok] or [0]
        received = [r.total("received")[0] for r in ok] or [0]
        print(
            f"{n:>4} {len(ok):>4} {statistics.median(durations):>10.1f} {p95(durations):>8.1f} "
            f"{statistics.median(sent):>10.0f} {statistics.median(received):>9.0f} "
            f"{cpu:>9.2f} {peak:>11.1f} {wall:>7.2f}"
        )
        failed = [r for r in results if r.outcome is not Outcome.SUCCESS]
        for r in failed[:5]:
            print(f"     failed: {r.reason} {r.detail}")


if __name__ == "__main__":
    main()
