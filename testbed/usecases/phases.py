"""A lifecycle phase as a use case: run the playbook on a run's hosts, record it, annotate the
run's own Grafana. What `testbed phase` and scenario runners call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import bringup
from testbed.engines.base import Engine
from testbed.errors import PhaseFailed
from testbed.observe.publish import annotate_own_grafana
from testbed.phases.runner import DEFAULT_FORKS, PhaseEvent, PhaseResult, run_phase


@dataclass(frozen=True)
class PhaseRun:
    result: PhaseResult
    grafana: str | None  # a line about the run's own Grafana's annotations; None: no Grafana

    def raise_for_failure(self) -> None:
        """PhaseFailed when some hosts failed or Ansible did not finish."""
        result = self.result
        if result.succeeded:
            return
        failed = result.failed_hosts
        raise PhaseFailed(
            f"phase {result.phase}: {len(failed)} of {len(result.hosts)} hosts failed: "
            + ", ".join(failed)
            if failed
            else f"phase {result.phase}: ansible-runner reported {result.status} (rc {result.rc})",
            f"fix the cause, then `testbed phase {result.phase} --resume` finishes what is "
            f"missing; Ansible's full output: {result.artifacts}/stdout",
        )


def phase(
    engine: Engine,
    name: str,
    run: str | None = None,
    *,
    limit: str | None = None,
    extravars: dict[str, Any] | None = None,
    forks: int = DEFAULT_FORKS,
    check: bool = False,
    resume: bool = False,
    on_event: Callable[[PhaseEvent], None] | None = None,
    on_collections: Callable[[str], None] | None = None,
) -> PhaseRun:
    """Run phase ``name`` (install, commission, maintain, ...) on the run's hosts; PhaseError if
    it cannot run at all. Failed hosts are in the result: ``raise_for_failure()`` raises."""
    result = run_phase(
        name,
        engine=engine,
        run=bringup.resolve_run(engine, run),
        limit=limit,
        extravars=extravars or {},
        forks=forks,
        check=check,
        resume=resume,
        on_event=on_event,
        on_collections=on_collections,
    )
    return PhaseRun(result, annotate_own_grafana(engine, result.run, Path(result.run_dir)))
