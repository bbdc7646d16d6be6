"""Waiting for a started node container until the node reports ready (the Docker engine's
readiness check, also used by the Swarm engine through it)."""

from __future__ import annotations

import time

import docker
import docker.errors

from testbed.engines.docker_errors import _translated
from testbed.errors import NodeFailed

READY_TIMEOUT = 60.0
READY_POLL = 0.25  # between probe execs (an exec ends early when the node stops)
READY_PROBE_WAIT = 10.0
LOG_TAIL = 30


def wait_ready(client: docker.DockerClient, name: str, container_id: str) -> None:
    """Until the node's control endpoint answers /ready with 200 (NodeFailed if it stops or
    takes longer than READY_TIMEOUT). The probe waits inside the node, asking every 50 ms,
    for up to READY_PROBE_WAIT s per exec: one interpreter start per node rather than one
    per poll, which on a busy host cost more CPU than the nodes' own start."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        with _translated(f"checking node {name}"):
            info = client.api.inspect_container(container_id)
            if not info["State"]["Running"]:
                raise NodeFailed(
                    name,
                    f"node {name} stopped during start-up (exit code {info['State']['ExitCode']})",
                    log_tail(client, container_id),
                    f"read its log: `testbed logs {name}`",
                )
            wait = max(0.0, min(READY_PROBE_WAIT, deadline - time.monotonic()))
            probe = ["python3", "-m", "testbed.node.probe", "ready", "--wait", f"{wait:.1f}"]
            try:
                exec_id = client.api.exec_create(container_id, probe)["Id"]
                client.api.exec_start(exec_id)
                if client.api.exec_inspect(exec_id)["ExitCode"] == 0:
                    return
            except docker.errors.APIError as exc:
                # The node may exit between the inspection and the probe (the daemon
                # answers 409 "is not running"): the next inspection reports its exit.
                if exc.status_code != 409:
                    raise
        if time.monotonic() > deadline:
            raise NodeFailed(
                name,
                f"node {name} did not report ready within {READY_TIMEOUT:.0f} s",
                log_tail(client, container_id),
                f"read its log: `testbed logs {name}`; rerun with --keep-on-error",
            )
        time.sleep(READY_POLL)


def log_tail(client: docker.DockerClient, container_id: str) -> str:
    """The last LOG_TAIL lines of a container's log, for an error that names the node."""
    try:
        raw: bytes = client.api.logs(container_id, tail=LOG_TAIL)
        return raw.decode("utf-8", "replace")
    except docker.errors.DockerException:
        return "(log not available)"
