"""A trust center role in a process of its own, for the crash tests.

    python -m tests.unit.node.trust_center.serve_tc MATERIAL STATE PORT [CRASH_AFTER_COMMIT]

Prints "ready" once it serves on [::1]:PORT, then runs until killed. With CRASH_AFTER_COMMIT=N
the process SIGKILLs itself right after the Nth issuance is committed, before the answer is
sent: the one window a crash test cannot hit reliably from outside.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from testbed.node.trust_center.registry import Registry
from testbed.node.trust_center.role import TrustCenterRole
from tests.unit.node.trust_center.world import role_context


def crash_after_commit(n: int) -> None:
    original = Registry.enroll
    count = 0

    def enroll(self: Registry, *args: Any, **kwargs: Any) -> Any:
        nonlocal count
        issued = original(self, *args, **kwargs)
        count += 1
        if count == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return issued

    Registry.enroll = enroll  # type: ignore[method-assign]


async def main(material: Path, state: Path, port: int) -> None:
    role = TrustCenterRole(role_context(state), material_root=material, bind=("::1", port))
    role.register_metrics(CollectorRegistry())
    await role.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) > 4:
        crash_after_commit(int(sys.argv[4]))
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
