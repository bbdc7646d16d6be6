"""Benchmark: N things bootstrap (edhoc-oscore) against ONE trust center.

The trust center is the real node process (`python -m testbed.node`, role trust_center) on
this host, with credentials minted by testbed.manufacture exactly as `testbed up` mints them.
The things are the real thing-side profile (EdhocOscoreProfile: EDHOC, OSCORE, CSR to
/.well-known/est/sen), run from this process with bounded concurrency so that the client side
does not dominate. Before the things bootstrap, the trust center imports each thing's device
record (voucher, IDevID, CCS) as the install phase does; a thing it has not imported is refused.
Prints per-thing median and p95 duration and bytes, and the trust center's CPU seconds (utime +
stime from /proc) and peak memory (VmHWM). Exits 1 when any bootstrap failed.

Everything runs in a network namespace of its own (the script re-executes itself under
``unshare -n``, or ``unshare -rn`` without root): the node process may change the routes and
firewall of the namespace it runs in, and this host's must stay as they are.

    .venv/bin/python bench/bootstrap.py [--sizes 10 50 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
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
from testbed.node import netns
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
IN_NAMESPACE = "TESTBED_BENCH_NETNS"  # set when this process is the re-executed copy


def own_namespace() -> None:
    """Re-execute this script in a new network namespace, with loopback up; never return."""
    if os.environ.get(IN_NAMESPACE) != "1":
        unshare = shutil.which("unshare")
        if unshare is None:
            raise SystemExit("bench/bootstrap.py needs unshare(1) (util-linux)")
        flags = "-n" if os.geteuid() == 0 else "-rn"  # -r: a user namespace maps us to root
        env = {**os.environ, IN_NAMESPACE: "1"}
        script = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execve(unshare, [unshare, flags, *script], env)
    where = netns.check()
    if not where.own:
        raise SystemExit(f"not in a network namespace of its own: {where.reason}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


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
    # Loopback only: isolating would filter lo (the "mgmt" interface here) down to tcp/metrics.
    config["isolate"] = False
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


def import_devices(run_dir: Path, control: int, things: list[tuple[str, str]]) -> None:
    """What the install phase does: the owner's trust center imports each device record."""
    for name, serial in things:
        thing = run_dir / "pki" / "things" / name
        params = {
            "serial": serial,
            **{
                key: base64.b64encode((thing / file).read_bytes()).decode()
                for key, file in (
                    ("voucher", "voucher.cbor"),
                    ("idevid", "idevid.crt.der"),
                    ("ccs", "device.ccs.cbor"),
                )
            },
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{control}/actions/import-device",
            data=json.dumps(params).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
        except OSError as exc:  # HTTPError included: the trust center refused the record
            raise SystemExit(f"the trust center did not import {name}: {exc}") from exc


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    own_namespace()
    failures = 0
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
            proc, control = start_trust_center(run_dir, tc, state)
            try:
                planned = [
                    (x.name, x.config.attributes["serial"]) for x in plan.nodes if x.role == "thing"
                ]
                import_devices(run_dir, control, planned)
                cpu0 = cpu_seconds(proc.pid)
                things = [name for name, _ in planned]
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
        failures += len(failed)
    if failures:
        print(f"FAILED: {failures} bootstraps did not succeed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
