"""Benchmark: wall time of `testbed up` against the floor of starting bare containers.

For default.yaml and a 30-thing topology, it measures
  - testbed:  bringup.up() (networks, volumes, containers, routes, readiness checks), and
  - floor:    the same number of containers from the same image, started with the SDK in the
              same thread pool, doing nothing (`sleep`), with no networks or readiness checks,
  - networks: the floor's containers, each attached to as many user-defined IPv6 bridge
              networks as its node has in the plan (`mgmt` and its data network for a thing,
              four for the border router), still doing nothing: the Docker daemon's share of
              `testbed up`, which no change inside the testbed can go below,
and prints the median of each (with min-max: the machine may be shared, so they are measured
alternately, back to back) and the ratios of the medians to the floor.
Run: .venv/bin/python bench/bringup.py [--repeat N] [--cases default.yaml ...] [--prefix NAME]
(run names start with NAME, default "bench": on a shared daemon, give yours your own)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.types import IPAMConfig, IPAMPool

from testbed import bringup
from testbed.engines.docker import CONNECTIONS, WORKERS, DockerEngine
from testbed.engines.images import ensure_node_image
from testbed.plan import make_plan
from testbed.topology import parse_topology

ROOT = Path(__file__).resolve().parents[1]


def thirty_things() -> str:
    text = (ROOT / "topologies" / "default.yaml").read_text()
    # 2 + 1 + 3 = 6 things in default.yaml; scale the lamp group to reach 30.
    return text.replace(
        '  - name: "lamp-{n:02d}"\n    count: 3', '  - name: "lamp-{n:02d}"\n    count: 27'
    )


def time_testbed(backend: DockerEngine, text: str, image: str, prefix: str) -> float:
    run = f"{prefix}-{uuid.uuid4().hex[:6]}"
    plan = make_plan(parse_topology(text), run)
    start = time.perf_counter()
    try:
        bringup.up(backend, plan, text, image, lambda *_: None)
        return time.perf_counter() - start
    finally:
        bringup.down(backend, run)


def time_floor(client: docker.DockerClient, count: int, image: str, prefix: str) -> float:
    run = f"{prefix}-floor-{uuid.uuid4().hex[:6]}"

    def start_one(i: int) -> None:
        client.containers.run(
            image,
            entrypoint=["sleep", "300"],
            name=f"{run}-{i}",
            detach=True,
            labels={"testbed.run": run},
        )

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(start_one, range(count)))
        return time.perf_counter() - start
    finally:
        for c in client.containers.list(all=True, filters={"label": f"testbed.run={run}"}):
            c.remove(force=True)


def time_networks(client: docker.DockerClient, shape: list[int], image: str, prefix: str) -> float:
    """The floor's containers on the plan's number of networks per node (``shape``): the
    networks are made first, as `testbed up` does, and not timed."""
    run = f"{prefix}-nets-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().int % 0xFFFF
    networks = [
        client.networks.create(
            f"{run}-{k}",
            driver="bridge",
            enable_ipv6=True,
            internal=True,
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=f"fd6e:{tag:x}:{k}::/64")]),
            labels={"testbed.run": run},
        )
        for k in range(max(shape))
    ]

    def start_one(i: int) -> None:
        container = client.containers.create(
            image,
            entrypoint=["sleep", "300"],
            name=f"{run}-{i}",
            network=networks[0].name,
            labels={"testbed.run": run},
        )
        for net in networks[1 : shape[i]]:
            net.connect(container)
        container.start()

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(start_one, range(len(shape))))
        return time.perf_counter() - start
    finally:
        for c in client.containers.list(all=True, filters={"label": f"testbed.run={run}"}):
            c.remove(force=True)
        for net in networks:
            net.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--cases", nargs="+", choices=["default.yaml", "30 things"],
        default=["default.yaml", "30 things"], help="which topologies (default: both)",
    )  # fmt: skip
    parser.add_argument(
        "--prefix", default="bench", help="run names start with this (default: bench)"
    )
    args = parser.parse_args()
    os.environ.setdefault("TESTBED_HOME", tempfile.mkdtemp(prefix="testbed-bench-"))
    client = docker.from_env(timeout=300, max_pool_size=CONNECTIONS)
    image = ensure_node_image(client, project_root=ROOT, cache_dir=ROOT / ".testbed" / "cache").tag
    backend = DockerEngine(client)
    cases = {
        "default.yaml": (ROOT / "topologies" / "default.yaml").read_text(),
        "30 things": thirty_things(),
    }
    print(
        f"{'topology':<14} {'nodes':>5} {'testbed up s (min-max)':>24} {'floor s (min-max)':>20} "
        f"{'networks s (min-max)':>21} {'up/floor':>8} {'networks/floor':>14}"
    )
    for name, text in cases.items():
        if name not in args.cases:
            continue
        shape = [len(node.networks) for node in make_plan(parse_topology(text), "x").nodes]
        nodes = len(shape)
        ups, floors, nets = [], [], []
        for _ in range(args.repeat):  # alternately, so that load from others hits all alike
            ups.append(time_testbed(backend, text, image, args.prefix))
            floors.append(time_floor(client, nodes, image, args.prefix))
            nets.append(time_networks(client, shape, image, args.prefix))
        up_s, floor_s, nets_s = (statistics.median(x) for x in (ups, floors, nets))
        print(
            f"{name:<14} {nodes:>5} {up_s:>9.2f} ({min(ups):5.2f}-{max(ups):5.2f}) "
            f"{floor_s:>8.2f} ({min(floors):4.2f}-{max(floors):4.2f}) "
            f"{nets_s:>9.2f} ({min(nets):5.2f}-{max(nets):5.2f}) "
            f"{up_s / floor_s:>8.1f} {nets_s / floor_s:>14.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
