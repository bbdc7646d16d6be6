"""``python -m testbed.node.confine -- CMD ARGS``: run CMD with the node's run-time privileges.

`testbed exec` runs every command through this, so that what an experiment runs inside a node
(an attack tool on an attacker host, a script on a thing) has no more network privilege than
the node process itself keeps after set-up (testbed.node.capabilities): on a thing, a trust
center or an Internet host no CAP_NET_ADMIN and no CAP_NET_RAW, so it cannot change routes or
filters, add addresses, or write raw packets; a border router keeps both (tcpdump, nft).

Single-threaded until exec, so dropping on this thread covers the command and all it starts.
Exit codes: the command's; 126 when privileges cannot be dropped (the command does not run);
127 when the command is not found.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from testbed.contracts.node_config import CONFIG_FILE, NodeConfig
from testbed.node import capabilities


def main(argv: Sequence[str] | None = None, config: Path = CONFIG_FILE) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m testbed.node.confine -- CMD [ARGS...]", file=sys.stderr)
        return 2
    try:
        role = NodeConfig.load(config).role
        capabilities.drop(capabilities.to_drop(role))
    except (OSError, ValueError, KeyError) as exc:
        print(f"confine: cannot drop network privileges: {exc}", file=sys.stderr)
        return 126
    try:
        os.execvp(args[0], args)
    except OSError as exc:
        print(f"confine: {args[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
