"""Benchmark: a building of N things, brought up, commissioned, measured idle and torn down.

The building is the default one (a facility operator, its trust center, two vendors, a backend
on the Internet side) with N lamps spread over radio PANs of at most --per-pan things each, and
one border router per --pans-per-router PANs; with --pack K the lamps run packed, K per
container (thing hosts, docs/packed-things.md); --auto lets them commission themselves rather
than through the install and commission phases; --topology FILE brings up that building
instead (topologies/campus-1000.yaml). It reports
  - time to ready:         `up` until every node answers /ready,
  - time to commissioned:  until every thing is operational (install + commission phases),
  - per thing, idle:       memory (cgroup usage without page cache, Docker stats) and CPU (the
                           cgroup's CPU time over --idle seconds), median and max over thing
                           containers (a thing host's divided by its things),
  - the building, idle:    memory and CPU of every container of the run (routers, trust
                           centers, backend, Prometheus included), by role, with the load
                           average before and after (others' work is in the load, not in
                           the run's containers' CPU time),
  - with --breakdown:      what a thing process's memory is made of (resident set size inside a
                           container of the node image after each import stage),
and removes the run. It exits non-zero when the run does not come up or a thing is not
operational, or a thing's figures cannot be read.

Run: .venv/bin/python bench/scale.py --things 100 [--per-pan 50] [--pack 50] [--auto]
     [--idle 20] [--breakdown];  .venv/bin/python bench/scale.py --topology FILE
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import yaml

from testbed import bringup
from testbed.contracts.node_config import Role
from testbed.engines.docker import WORKERS, DockerEngine
from testbed.topology import parse_topology
from testbed.usecases import bring_up
from testbed.usecases.progress import Stage

ROOT = Path(__file__).resolve().parents[1]


def topology_text(
    things: int, per_pan: int, pans_per_router: int, pack: int = 0, auto: bool = False
) -> str:
    """default.yaml's building with ``things`` lamps over as many PANs as it takes (packed
    ``pack`` per thing host when ``pack`` is set; commissioning by themselves with ``auto``)."""
    base = yaml.safe_load((ROOT / "topologies" / "default.yaml").read_text())
    pan_count = max(1, -(-things // per_pan))
    template = base["pans"][0]
    base["pans"] = [
        {**template, "name": f"floor{p + 1}", "channel": 11 + p % 16, "pan_id": 0xA000 + p}
        for p in range(pan_count)
    ]
    base["border_routers"] = [
        {
            "name": f"br{r + 1}",
            "pans": [pan["name"] for pan in base["pans"][start:][:pans_per_router]],
        }
        for r, start in enumerate(range(0, pan_count, pans_per_router))
    ]
    lamp = next(t for t in base["things"] if t["model"] == "lamp-e27")
    base["things"] = []
    for p in range(pan_count):
        count = min(per_pan, things - p * per_pan)
        base["things"].append(
            {
                **lamp,
                "name": f"lamp-f{p + 1}-{{n:03d}}",
                "count": count,
                "pan": f"floor{p + 1}",
                **({"pack": pack} if pack else {}),
            }
        )
    if auto:
        base["commissioning"] = "auto"
    base["description"] = f"default building, {things} lamps on {pan_count} PANs"
    return yaml.safe_dump(base, sort_keys=False)


class Clock:
    """Progress that records when each stage ends (seconds since the start)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.ended: dict[str, float] = {}

    def begin(self, stage: Stage, total: int | None) -> None:
        return None

    def update(self, stage: Stage, detail: str = "", **_: Any) -> None:
        return None

    def end(self, stage: Stage, detail: str = "") -> None:
        self.ended[stage] = time.perf_counter() - self.start
        print(f"  {stage:<13} done at {self.ended[stage]:7.1f} s {detail}", flush=True)


def memory_bytes(stats: dict[str, Any]) -> int:
    """What `docker stats` shows: usage less the page cache (cgroup v1 "cache", v2
    "inactive_file")."""
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    return int(memory["usage"]) - int(cache)


def cpu_ns(stats: dict[str, Any]) -> int:
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"])


def idle_figures(
    client: docker.DockerClient, containers: list[str], idle: float
) -> tuple[list[int], list[float]]:
    """(memory bytes, CPU share of one core) per container, over ``idle`` seconds."""

    def sample(cid: str) -> dict[str, Any]:
        result: dict[str, Any] = client.api.stats(cid, stream=False, one_shot=True)
        return result

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        first = list(pool.map(sample, containers))
        started = time.monotonic()
        time.sleep(idle)
        second = list(pool.map(sample, containers))
        elapsed = time.monotonic() - started
    memory = [memory_bytes(s) for s in second]
    cpu = [(cpu_ns(b) - cpu_ns(a)) / 1e9 / elapsed for a, b in zip(first, second, strict=True)]
    return memory, cpu


# (stage, modules imported in it): cumulative, in this order, in one interpreter.
STAGES = [
    ("interpreter", []),
    ("asyncio", ["asyncio"]),
    ("prometheus_client", ["prometheus_client"]),
    (
        "cryptography (x509, ec)",
        ["cryptography.x509", "cryptography.hazmat.primitives.serialization"],
    ),
    ("aiocoap (+ oscore)", ["aiocoap", "aiocoap.oscore"]),
    ("lakers", ["lakers"]),
    ("mbedtls", ["mbedtls.tls"]),
    ("testbed.node (thing role, radio)", ["testbed.node.app", "testbed.node.thing.role"]),
]
BREAKDOWN = r"""
import json, sys
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
out = []
for name, modules in json.loads(sys.argv[1]):
    for module in modules:
        __import__(module)
    out.append((name, rss("VmRSS"), rss("RssAnon"), len(sys.modules)))
print(json.dumps(out))
"""


def breakdown(client: docker.DockerClient, image: str) -> None:
    import json

    raw = client.containers.run(
        image,
        entrypoint=["python3", "-c", BREAKDOWN, json.dumps(STAGES)],
        remove=True,
        network_mode="none",
    )
    rows = json.loads(raw.decode().strip().splitlines()[-1])
    print(
        "thing process memory by import stage (in a node container, cumulative; anonymous "
        "memory is private to each process, file-backed pages are shared libraries and code):"
    )
    previous = 0
    for name, rss, anon, modules in rows:
        print(
            f"  {name:<34} RSS {rss / 2**20:5.1f} MiB (+{(rss - previous) / 2**20:4.1f}), "
            f"anonymous {anon / 2**20:5.1f} MiB, {modules} modules"
        )
        previous = rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--things", type=int)
    parser.add_argument("--per-pan", type=int, default=50, help="things per PAN at most")
    parser.add_argument("--pans-per-router", type=int, default=2)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measurement")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument("--timeout", type=float, default=900.0, help="commissioning timeout")
    parser.add_argument("--breakdown", action="store_true", help="memory by import stage")
    parser.add_argument("--pack", type=int, default=0, help="things per thing host (0: off)")
    parser.add_argument("--auto", action="store_true", help="things commission themselves")
    parser.add_argument("--topology", type=Path, help="bring up this topology file instead")
    parser.add_argument("--run-prefix", default="scale-", help="the run's name before its id")
    args = parser.parse_args()
    if args.topology is None and args.things is None:
        parser.error("give --things N or --topology FILE")
    if args.things is not None and (
        args.things < 1 or args.per_pan < 1 or args.pans_per_router < 1
    ):
        parser.error("--things, --per-pan and --pans-per-router must be at least 1")
    os.environ.setdefault("TESTBED_HOME", tempfile.mkdtemp(prefix="testbed-scale-"))
    # Measure the nodes, not the run's Grafana (Prometheus stays: it scrapes every thing).
    os.environ.setdefault("TESTBED_GRAFANA", "0")
    if args.topology is not None:
        text = args.topology.read_text()
    else:
        text = topology_text(args.things, args.per_pan, args.pans_per_router, args.pack, args.auto)
    topology = parse_topology(text)
    expected = sum(len(t.names()) for t in topology.things)
    run = f"{args.run_prefix}{uuid.uuid4().hex[:6]}"
    backend = DockerEngine()
    clock = Clock()
    print(
        f"run {run}: {expected} things on {len(topology.pans)} PANs, "
        f"{len(topology.border_routers)} border routers",
        flush=True,
    )
    failures: list[str] = []
    try:
        result = bring_up.up(
            backend,
            topology,
            run,
            bring_up.UpOptions(commission_timeout=args.timeout),
            clock,
        )
        for name, (state, reason) in sorted(result.failed.items()):
            failures.append(f"{name}: {state} {reason}")
        image = result.image
        statuses = [s for s in backend.status(run) if s.state == "running"]
        running = [s for s in statuses if s.role == Role.THING]
        if len(running) != expected:
            failures.append(f"{len(running)} of {expected} things run")
        # Per container: a thing's own, or a thing host's (shared by the things it runs).
        per_container: dict[str, int] = {}
        for s in running:
            per_container[s.resource] = per_container.get(s.resource, 0) + 1
        containers = sorted(per_container)
        everything = sorted({s.resource for s in statuses})
        ready = clock.ended["nodes"] - clock.ended.get("image", 0.0)
        commissioned = clock.ended["commissioned"] - clock.ended.get("image", 0.0)
        time.sleep(args.settle)
        # Other work on the machine shows in the load, not in these containers' CPU time.
        load_before = os.getloadavg()[0]
        all_memory, all_cpu = idle_figures(backend.client, everything, args.idle)
        load_after = os.getloadavg()[0]
        by_name = dict(zip(everything, zip(all_memory, all_cpu, strict=True), strict=True))
        memory = [by_name[c][0] / per_container[c] for c in containers]
        cpu = [by_name[c][1] / per_container[c] for c in containers]
        mib = [m / 2**20 for m in memory]
        things_mib = sum(by_name[c][0] for c in containers) / 2**20
        things_cpu = sum(by_name[c][1] for c in containers)
        print(f"things                  {expected} in {len(containers)} containers")
        print(f"time to ready           {ready:8.1f} s (after the node image was found)")
        print(
            f"time to commissioned    {commissioned:8.1f} s "
            f"({expected - len(result.failed)} operational)"
        )
        print(
            f"memory per thing, idle  median {statistics.median(mib):.1f} MiB, "
            f"max {max(mib):.1f}, things' sum {things_mib:.0f} MiB"
        )
        print(
            f"CPU per thing, idle     median {100 * statistics.median(cpu):.2f} %, "
            f"max {100 * max(cpu):.2f} %, things' sum "
            f"{100 * things_cpu:.1f} % of one core "
            f"(over {args.idle:.0f} s)"
        )
        print(
            f"building, idle          {sum(all_memory) / 2**30:.2f} GiB, "
            f"{100 * sum(all_cpu):.1f} % of one core in {len(everything)} containers"
        )
        roles = {s.resource: s.role for s in statuses if s.role != Role.THING}
        roles.update({c: "things" for c in containers})
        shares: dict[str, float] = {}
        for name, (_, cpu_share) in by_name.items():
            role = roles.get(name, "observer")
            shares[role] = shares.get(role, 0.0) + cpu_share
        print(
            "  idle CPU by role      "
            + ", ".join(
                f"{r} {100 * c:.1f} %" for r, c in sorted(shares.items(), key=lambda x: -x[1])
            )
        )
        print(f"  load average (1 min)  {load_before:.1f} before, {load_after:.1f} after")
        if args.breakdown:
            breakdown(backend.client, image)
    except Exception as exc:  # reported, then torn down; the exit code says it failed
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        started = time.perf_counter()
        bringup.down(backend, run)
        print(f"torn down in {time.perf_counter() - started:.1f} s", flush=True)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
