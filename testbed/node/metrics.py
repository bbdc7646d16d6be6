"""Prometheus metrics of the node, served on its mgmt address.

The node uses its own CollectorRegistry (not the process-global default) so that exactly what is
registered here is exported, and tests can build several nodes in one process. Prometheus
scrapes ``http://[<mgmt address>]:<metrics_port>/metrics``; the targets come from the plan.

Node metrics (roles add theirs through Role.register_metrics):

    testbed_node_info{run,building,node,role,<attributes>}  1
    testbed_node_up                                          1 while the process runs
    testbed_node_ready                                       1 once the role has started
    testbed_node_start_time_seconds                          epoch seconds of process start
    process_*, python_info                                   CPU/memory of the node process
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import threading
import time
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)

from testbed.contracts.node_config import NodeConfig
from testbed.node import declared_metrics as declared
from testbed.node.errors import ServeError
from testbed.node.logs import EventLog
from testbed.node.redact import is_secret_name

# The mgmt address may still be tentative (DAD) right after the container starts, and binding a
# tentative address fails with EADDRNOTAVAIL; it becomes usable within a couple of seconds.
BIND_DEADLINE = 10.0
BIND_RETRY_DELAY = 0.25

_BASE_LABELS = ("run", "building", "node", "role")
# Attributes that are structured configuration (JSON), not facts to group series by.
_NOT_LABELS = ("radio-", "links-", "policy-")


def info_labels(config: NodeConfig) -> dict[str, str]:
    """Labels of testbed_node_info: identity plus the role facts, as valid label names."""
    labels = {k: str(getattr(config, k)) for k in _BASE_LABELS}
    for key, value in sorted(config.attributes.items()):
        name = re.sub(r"[^a-zA-Z0-9_]", "_", key).lstrip("_")
        if not name or name[0].isdigit():
            name = f"attr_{name}"
        # Identity labels win; secret-looking attributes never become labels.
        if name in labels or is_secret_name(key) or key.startswith(_NOT_LABELS):
            continue
        labels[name] = str(value)
    return labels


class NodeMetrics:
    def __init__(self, config: NodeConfig, process: bool = True) -> None:
        # No *_created series: they double the series count and nothing here uses them.
        # (Process-global in prometheus_client; this process exports only this registry.)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
        self.config = config
        self.registry = CollectorRegistry()
        declared.info("testbed_node", self.registry).info(info_labels(config))
        declared.gauge("testbed_node_up", self.registry).set(1)
        self.ready = declared.gauge("testbed_node_ready", self.registry)
        declared.gauge("testbed_node_start_time_seconds", self.registry).set(time.time())
        # The cost of security functions is what the testbed measures: keep CPU/RSS at hand.
        # A packed thing leaves them to its thing host: its process is the host's, shared.
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    async def serve(
        self, address: str, port: int, log: EventLog, deadline: float = BIND_DEADLINE
    ) -> None:
        """Serve /metrics on [address]:port in a daemon thread, retrying while not bindable."""
        give_up = time.monotonic() + deadline
        attempts = 0
        while True:
            attempts += 1
            try:
                self._server, self._thread = start_http_server(
                    port, addr=address, registry=self.registry
                )
                break
            except OSError as exc:
                retryable = exc.errno == errno.EADDRNOTAVAIL
                if not retryable or time.monotonic() >= give_up:
                    raise ServeError(
                        f"cannot serve metrics on [{address}]:{port}: {exc.strerror or exc}",
                        "is the mgmt address configured on an interface and the port free?",
                    ) from exc
                log.debug("metrics.bind_retry", address=address, port=port, attempt=attempts)
                await asyncio.sleep(BIND_RETRY_DELAY)
        log.info("metrics.serving", address=address, port=port, attempts=attempts)

    async def close(self, timeout: float = 0.8) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # shutdown() blocks until serve_forever notices (it polls every 0.5 s), so it runs in a
        # daemon thread of its own: not the default executor, which asyncio.run joins at exit.
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def shutdown() -> None:
            server.shutdown()
            with contextlib.suppress(RuntimeError):  # the loop may be gone after a timeout
                loop.call_soon_threadsafe(done.set)

        threading.Thread(target=shutdown, name="metrics-shutdown", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
        server.server_close()
