"""Wall time of each lifecycle phase for N things, and what one task costs per host.

    python bench/phases.py [--things 6 30] [--forks 10] [--phases install ...] [--json out.json]

For each N it brings up two-operators.yaml scaled to N things (the same mix of vendors and
domains; things wait for the commission phase), runs install, commission, maintain,
rebootstrap, recommission (the ventis sensors to the lighting contractor) and decommission
through ansible-runner exactly as `testbed phase` does, and tears the run down. Per phase:
wall time, tasks, hosts, the median and p95 of the per-host task durations Ansible reports
(``duration`` of each task result: the cost of one task on one host, module transfer and
`docker exec` included), and wall time per task (the phase's wall time over its tasks: what
one more task costs the whole phase at these forks). Exits 1 when a phase failed on any host.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testbed import bringup, rundir  # noqa: E402
from testbed.engines.docker import DockerEngine, connect  # noqa: E402
from testbed.engines.images import ensure_node_image  # noqa: E402
from testbed.phases.runner import PhaseEvent, run_phase  # noqa: E402

TOPOLOGY = ROOT / "topologies" / "two-operators.yaml"
PHASES: list[tuple[str, dict[str, Any]]] = [
    ("install", {}),
    ("commission", {}),
    ("maintain", {}),
    ("rebootstrap", {}),
    ("recommission", {"limit": "vendor_ventis", "extravars": {"to_domain": "lighting"}}),
    ("decommission", {}),
]


def scaled_topology(things: int, directory: Path) -> Path:
    """two-operators.yaml with its six things multiplied to ``things`` (a multiple of 6)."""
    data = yaml.safe_load(TOPOLOGY.read_text())
    factor = max(1, things // 6)
    groups = []
    for group in data["things"]:
        count = group.get("count", 1) * factor
        stem = group["name"].split("{")[0].rstrip("-") if "{" in group["name"] else group["name"]
        stem = stem.rsplit("-", 1)[0] if stem[-1].isdigit() else stem
        groups.append({**group, "name": stem + "-{n:02d}", "count": count})
    data["things"] = groups
    data["building"] = f"bench-{things}"
    path = directory / f"two-operators-{things}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def bench(things: int, forks: int, image: str, phases: list[str]) -> dict[str, Any]:
    backend = DockerEngine()
    run = f"ans-bench-{things}-{forks}-{uuid.uuid4().hex[:6]}"  # runs side by side may not clash
    with tempfile.TemporaryDirectory() as tmp:
        topology = scaled_topology(things, Path(tmp))
        plan, text = bringup.plan_for(topology, run)
        started = time.monotonic()
        bringup.up(backend, plan, text, image, lambda event, name: None)
    up_s = time.monotonic() - started
    out: dict[str, Any] = {"things": things, "forks": forks, "up_s": round(up_s, 1), "phases": {}}
    try:
        for phase, options in PHASES:
            if phase not in phases:
                continue
            durations: list[float] = []

            def collect(event: PhaseEvent, into: list[float] = durations) -> None:
                if event.kind in ("ok", "changed", "failed") and event.duration_s is not None:
                    into.append(event.duration_s)

            result = run_phase(
                phase, engine=backend, run=run, forks=forks, on_event=collect, **options
            )
            wall = result.end - result.start
            remote = [d for d in durations if d >= 0.05]  # controller-only tasks cost ~0
            out["phases"][phase] = {
                "wall_s": round(wall, 2),
                "tasks": result.tasks,
                "hosts": len(result.hosts),
                "failed": result.failed_hosts,
                "ok": result.succeeded,
                "task_per_host_median_s": round(statistics.median(remote), 3) if remote else None,
                "task_per_host_p95_s": round(percentile(remote, 0.95), 3) if remote else None,
                "wall_per_task_s": round(wall / max(1, result.tasks), 2),
            }
            print(f"  N={things} forks={forks} {phase:13s} {out['phases'][phase]}", flush=True)
    finally:
        bringup.down(backend, run)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--things", type=int, nargs="+", default=[6, 30])
    parser.add_argument("--forks", type=int, nargs="+", default=[10])
    parser.add_argument("--json", type=Path)
    names = [p for p, _ in PHASES]
    parser.add_argument("--phases", nargs="+", choices=names, default=names)
    args = parser.parse_args()
    image = ensure_node_image(
        connect(), project_root=ROOT, cache_dir=rundir.cache_dir(), base_image=None
    ).tag
    results = [bench(n, f, image, args.phases) for n in args.things for f in args.forks]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    failed = [
        f"N={r['things']} {phase}: {p['failed'] or 'not successful'}"
        for r in results
        for phase, p in r["phases"].items()
        if p["failed"] or not p["ok"]
    ]
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
