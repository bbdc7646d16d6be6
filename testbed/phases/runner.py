"""Run a lifecycle phase: its playbook through ansible-runner, with the run's live inventory.

    result = run_phase("maintain", run="office", limit="vendor_acme", on_event=print)

1. the inventory is derived from the run's Docker labels and written to RUN/ansible/inventory,
2. the collections come from the cache (testbed.phases.collections),
3. ``playbooks/<phase>.yml`` runs with ansible-runner (private data dir RUN/ansible; its
   artifacts, the full event stream of the last runs, stay there),
4. every task result becomes a :class:`PhaseEvent` for the caller's progress display, and the
   final per-host outcome (ok / changed / failed with the reason) a :class:`PhaseResult`,
5. which is appended to RUN/phases.jsonl (testbed.phases.records).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed import project
from testbed.engines.base import Engine
from testbed.errors import PhaseError
from testbed.errors import PhaseFailed as PhaseFailed  # where the phase verbs import it from
from testbed.phases import collections, inventory, records

PLAYBOOKS = project.PLAYBOOKS
PHASES = (
    "install",
    "commission",
    "maintain",
    "rebootstrap",
    "decommission",
    "recommission",
    "site",
)
# bench/phases.py, 30 things on 2 cores: forks 4 took 13-27 s per phase and 1.2-1.9 s per
# task on a host; forks 10 took 15-38 s and 3-7 s per task (module starts contend for CPU).
DEFAULT_FORKS = max(2, 2 * (os.cpu_count() or 1))
KEEP_ARTIFACTS = 20
REASON_LIMIT = 400
# The fact a playbook sets (ansible.builtin.set_fact) to report a step it skipped, and why.
SKIPPED_FACT = "testbed_skipped"


@dataclass(frozen=True)
class PhaseEvent:
    kind: str  # task (a task starts), ok, changed, failed, unreachable, skipped
    host: str  # "" for task
    task: str
    message: str = ""
    duration_s: float | None = None


EventFn = Callable[[PhaseEvent], None]


@dataclass
class HostOutcome:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    reason: str = ""  # the last failure: "task: message"
    # Steps the playbook skipped on purpose, with the reason ("firmware update: no vendor
    # cloud ..."): a task sets the fact SKIPPED_FACT to say so.
    skipped_steps: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        if self.changed:
            return "changed"
        if self.ok:
            return "ok"
        return "skipped"

    @property
    def succeeded(self) -> bool:
        return not (self.failed or self.unreachable)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, **asdict(self)}


@dataclass
class PhaseResult:
    phase: str
    run: str
    start: float
    end: float
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    limit: str | None
    forks: int
    check: bool
    extravars: dict[str, Any]
    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    tasks: int = 0  # task starts seen (all plays)
    artifacts: str = ""  # ansible-runner's artifact directory of this run (stdout, events)
    run_dir: str = ""
    resumed_from: float | None = None  # --resume: the start of the failed run it continues

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, o in self.hosts.items() if not o.succeeded)

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and self.status == "successful" and not self.failed_hosts

    def to_record(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "run": self.run,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "duration_s": round(self.end - self.start, 3),
            "status": "successful" if self.succeeded else "failed",
            "runner_status": self.status,
            "rc": self.rc,
            "limit": self.limit,
            "forks": self.forks,
            "check": self.check,
            "extravars": self.extravars,
            "resumed_from": self.resumed_from,
            "tasks": self.tasks,
            "hosts": {h: o.to_dict() for h, o in sorted(self.hosts.items())},
        }


def playbook_path(phase: str) -> Path:
    if phase not in PHASES:
        raise PhaseError(f"unknown phase {phase!r}", "one of: " + ", ".join(PHASES))
    path = PLAYBOOKS / f"{phase}.yml"
    if not path.is_file():
        raise PhaseError(f"playbook {path} is missing", "is this a complete checkout?")
    return path


def _short(text: Any) -> str:
    one = " ".join(str(text or "").split())
    return one if len(one) <= REASON_LIMIT else one[: REASON_LIMIT - 3] + "..."


def failure_message(res: Mapping[str, Any]) -> str:
    """The most telling line of a failed or unreachable task result."""
    message = res.get("msg") or ""
    if not message and res.get("results"):  # a loop: the first failed item
        for item in res["results"]:
            if isinstance(item, dict) and item.get("failed"):
                return failure_message(item)
    if not message:
        message = res.get("stderr") or res.get("module_stderr") or res.get("reason") or ""
    return _short(message) or "failed (no message)"


class _Collector:
    """Turns ansible-runner events into PhaseEvents and per-host counts."""

    def __init__(self, on_event: EventFn | None) -> None:
        self.on_event = on_event
        self.hosts: dict[str, HostOutcome] = {}
        self.tasks = 0
        self.stats: dict[str, dict[str, int]] | None = None
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> bool:
        # A display problem must never break the run.
        with contextlib.suppress(Exception):
            self._handle(event)
        return True

    def _emit(self, phase_event: PhaseEvent) -> None:
        if self.on_event is not None:
            self.on_event(phase_event)

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.tasks += 1
            self._emit(PhaseEvent("task", "", str(data.get("task", ""))))
            return
        if kind == "playbook_on_stats":
            self.stats = {
                key: dict(data.get(key) or {})
                for key in ("ok", "changed", "failures", "dark", "skipped", "ignored", "rescued")
            }
            return
        outcome = {
            "runner_on_ok": "ok",
            "runner_on_failed": "failed",
            "runner_on_unreachable": "unreachable",
            "runner_on_skipped": "skipped",
        }.get(kind)
        if outcome is None:
            return
        host = str(data.get("host", ""))
        task = str(data.get("task", ""))
        res = data.get("res") or {}
        message = ""
        if outcome == "ok" and res.get("changed"):
            outcome = "changed"
        if outcome == "failed" and data.get("ignore_errors"):
            outcome = "ok"
        if outcome in ("failed", "unreachable"):
            message = failure_message(res)
            with self.lock:
                self.hosts.setdefault(host, HostOutcome()).reason = f"{task}: {message}"
        skipped_step = (res.get("ansible_facts") or {}).get(SKIPPED_FACT)
        if outcome in ("ok", "changed") and skipped_step:
            message = _short(skipped_step)
            with self.lock:
                self.hosts.setdefault(host, HostOutcome()).skipped_steps.append(message)
        duration = data.get("duration")
        self._emit(
            PhaseEvent(
                outcome,
                host,
                task,
                message,
                float(duration) if isinstance(duration, int | float) else None,
            )
        )

    def outcomes(self) -> dict[str, HostOutcome]:
        """Per-host counts from the play recap (authoritative) and reasons from the events."""
        stats = self.stats or {}
        hosts = set(self.hosts)
        for counts in stats.values():
            hosts |= set(counts)
        out: dict[str, HostOutcome] = {}
        for host in sorted(hosts):
            seen = self.hosts.get(host, HostOutcome())
            out[host] = HostOutcome(
                ok=stats.get("ok", {}).get(host, 0),
                changed=stats.get("changed", {}).get(host, 0),
                failed=stats.get("failures", {}).get(host, 0),
                unreachable=stats.get("dark", {}).get(host, 0),
                skipped=stats.get("skipped", {}).get(host, 0),
                reason=seen.reason,
                skipped_steps=list(seen.skipped_steps),
            )
        return out


def runner_environment(cols: collections.Collections) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {
        **collections.environment(cols),
        # ansible-playbook from this virtualenv, and the `docker` CLI the connection calls.
        "PATH": bindir + os.pathsep + path if bindir not in path.split(os.pathsep) else path,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_NOCOLOR": "1",
    }


def run_phase(
    phase: str,
    *,
    engine: Engine,
    run: str,
    limit: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    forks: int = DEFAULT_FORKS,
    check: bool = False,
    on_event: EventFn | None = None,
    on_collections: Callable[[str], None] | None = None,
    record: bool = True,
    resume: bool = False,
) -> PhaseResult:
    """Run one phase on a running testbed; the result is also appended to RUN/phases.jsonl.

    The playbooks get ``testbed_phase_start``: now, or with ``resume`` the start of the last
    run of this phase if it failed, so that key rotation and re-bootstrap skip the things that
    run already did (their credentials are newer) and do the rest.
    """
    playbook = playbook_path(phase)
    try:
        import ansible_runner  # type: ignore[import-untyped]
    except ImportError as exc:
        raise PhaseError(
            "ansible-runner is not installed", "install the project: pip install -e ."
        ) from exc
    inv = inventory.inventory_for_run(engine, run)
    run_dir = Path(inv.run_dir)
    inventory_file = inventory.write_inventory(inv, run_dir)
    cols = collections.ensure_collections(report=on_collections)
    private = run_dir / "ansible"
    collector = _Collector(on_event)
    variables = dict(extravars or {})
    start = time.time()
    phase_start = resumed_start(run_dir, phase) if resume else start
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(PLAYBOOKS),
            playbook=playbook.name,
            inventory=str(inventory_file),
            extravars={"testbed_phase_start": phase_start, **variables},
            limit=limit,
            forks=forks,
            cmdline="--check --diff" if check else None,
            envvars=runner_environment(cols),
            event_handler=collector,
            quiet=True,
            ident=f"{phase}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}",
            rotate_artifacts=KEEP_ARTIFACTS,
            settings={"suppress_ansible_output": True},
        )
    except Exception as exc:  # ansible-runner raises its own and plain errors
        raise PhaseError(
            f"ansible-runner could not run {playbook.name}: {exc}",
            f"see the artifacts in {private}/artifacts",
        ) from exc
    end = time.time()
    hosts = collector.outcomes()
    result = PhaseResult(
        phase=phase,
        run=run,
        start=start,
        end=end,
        status=str(runner.status),
        rc=int(runner.rc if runner.rc is not None else 1),
        limit=limit,
        forks=forks,
        check=check,
        extravars=variables,
        hosts=hosts,
        tasks=collector.tasks,
        artifacts=str(getattr(runner.config, "artifact_dir", "")),
        run_dir=str(run_dir),
        resumed_from=phase_start if resume else None,
    )
    if not hosts and result.rc != 0:
        # Nothing ran (a syntax error, an empty --limit, a missing collection): say why.
        stdout = _tail(Path(result.artifacts) / "stdout") if result.artifacts else ""
        result.hosts = {}
        if record:
            records.record_phase(run_dir, result.to_record())
        raise PhaseError(
            f"{phase}: ansible-playbook exited {result.rc} before any task ran: {stdout}",
            f"the full output is in {result.artifacts}/stdout",
        )
    if record:
        records.record_phase(run_dir, result.to_record())
    return result


def resumed_start(run_dir: Path, phase: str) -> float:
    """The start of the last run of ``phase`` if it failed (what --resume continues)."""
    last = None
    for entry in records.read_phases(run_dir):
        if entry.get("phase") == phase and not entry.get("check"):
            last = entry
    if last is None or last.get("status") != "failed":
        state = "no run" if last is None else "its last run succeeded"
        raise PhaseError(
            f"nothing to resume: phase {phase} has {state} in {records.phases_path(run_dir)}",
            f"run it without --resume: testbed phase {phase}",
        )
    return float(last["start"])


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return _short(" | ".join(kept))
