"""Runs the project's user-space shaper on one interface, for the host measurement test:

    ip netns exec NS python -m tests.vm.shaper_process DEV

Each line on stdin is an impairment (JSON, as the shaping-set action takes it), applied live;
"ok" or "error: ..." is printed per line. End of input clears the link and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys

from testbed.contracts.impairment import Impairment
from testbed.node.shaping.runner import run
from testbed.node.shaping.userspace import UserspaceLink


async def main(dev: str) -> None:
    link = UserspaceLink("backbone", dev, seed=1, runner=run)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            try:
                await link.apply(Impairment.from_dict(json.loads(line)))
                print("ok", flush=True)
            except Exception as exc:
                print(f"error: {exc}", flush=True)
        print(json.dumps(link.snapshot()), flush=True)
    finally:
        await link.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
