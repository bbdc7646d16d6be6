"""``python -m testbed.node``: the process that runs in every container.

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 failed while starting or running; 2 the config cannot
work (unreadable node.json, unknown role, missing role facts) so restarting will not help.
Every outcome is one JSON log line on stdout, which the host shows when a node fails.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from testbed.contracts.node_config import CONFIG_FILE, STATE_DIR, NodeConfig
from testbed.contracts.packing import ROLE as THING_HOST
from testbed.node import logs
from testbed.node.errors import ConfigError, NodeError, StateError
from testbed.node.netsetup import validate_route
from testbed.node.node import Node

if TYPE_CHECKING:
    from testbed.node.packing.host import ThingHost

EXIT_OK = 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m testbed.node", description=__doc__)
    parser.add_argument("--config", type=Path, default=CONFIG_FILE, help="node.json to read")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help="persistent state")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


def load_config(path: Path) -> NodeConfig:
    """Read and sanity-check node.json; every problem becomes a ConfigError (exit 2)."""
    try:
        config = NodeConfig.load(path)
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}", "mount node.json or pass --config") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"cannot read config {path}: {exc!r}", "regenerate it with the host's planner"
        ) from exc
    for iface in config.interfaces:
        try:
            ipaddress.IPv6Interface(iface.ipv6)
        except ValueError as exc:
            raise ConfigError(f"interface on {iface.network}: {exc}") from exc
    for route in config.routes:
        validate_route(route)
    try:
        config.address("mgmt")
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]), "every node needs an interface on 'mgmt'") from exc
    for port in (config.control_port, config.metrics_port):
        if not 0 < port < 65536:
            raise ConfigError(f"port {port} out of range")
    return config


def prepare_state_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"cannot create state dir {path}: {exc.strerror or exc}",
            "mount a writable volume there or pass --state-dir",
        ) from exc


async def run(node: Node | ThingHost) -> int:
    """Start the node, then wait for a stop signal or a fatal role failure."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    starting = asyncio.create_task(node.start(), name="node-start")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    failing = asyncio.create_task(node.failed.wait(), name="role-failure")
    code = EXIT_OK
    try:
        done, _ = await asyncio.wait(
            {starting, stopping, failing}, return_when=asyncio.FIRST_COMPLETED
        )
        if starting in done:
            starting.result()  # raises if the start failed
            await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        if failing.done() and not stopping.done():
            failure = node.failure
            node.log.error("node.failed", error=repr(failure))
            code = failure.exit_code if isinstance(failure, NodeError) else 1
    except NodeError as exc:
        node.log.error("node.failed", error=exc.message, hint=exc.hint)
        code = exc.exit_code
    except Exception as exc:
        node.log.exception("node.failed", error=repr(exc))
        code = 1
    finally:
        for task in (starting, stopping, failing):
            task.cancel()
        await asyncio.gather(starting, stopping, failing, return_exceptions=True)
        await node.stop()
    node.log.info("node.stopped", signal=received[0] if received else None, exit_code=code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Until the config is read we do not know node and role; say so rather than guess.
    log = logs.setup(None, None, args.log_level)
    try:
        config = load_config(args.config)
        log = logs.setup(config.node, config.role, args.log_level)
        log.info(
            "node.starting",
            run=config.run,
            building=config.building,
            config=str(args.config),
            state_dir=str(args.state_dir),
        )
        prepare_state_dir(args.state_dir)
        node: Node | ThingHost
        if config.role == THING_HOST:
            # Imported here: a thing host's stack (CoAP, OSCORE, EDHOC for every packmate) is
            # start-up CPU that no other node needs to spend.
            from testbed.node.packing.host import ThingHost

            node = ThingHost(config, args.state_dir, log, Path(args.config).parent)
        else:
            node = Node(config, args.state_dir, log, material_root=Path(args.config).parent)
    except NodeError as exc:
        log.error("node.failed", error=exc.message, hint=exc.hint, exit_code=exc.exit_code)
        return exc.exit_code
    return asyncio.run(run(node))
