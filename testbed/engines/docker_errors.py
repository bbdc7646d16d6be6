"""Docker errors -> TestbedErrors with a hint, at the boundary of the Docker engine."""

from __future__ import annotations

from typing import Any

import docker.errors

from testbed.errors import DaemonUnavailable, EngineError, NotRunning


def daemon_error(exc: BaseException) -> DaemonUnavailable:
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return DaemonUnavailable(
            "permission denied on the Docker socket",
            "add yourself to the 'docker' group (then log in again) or run as root",
        )
    return DaemonUnavailable(
        f"cannot connect to the Docker daemon ({text.splitlines()[0][:160]})",
        "start it (e.g. `sudo systemctl start docker` or `sudo dockerd &`) and try again",
    )


class _translated:
    """Context manager: docker errors -> TestbedError, naming what we were doing."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, docker.errors.DockerException):
            return
        if isinstance(exc, docker.errors.APIError):
            explanation = str(exc.explanation or exc)
            if exc.status_code == 409 and "is not running" in explanation:
                raise NotRunning(
                    f"{self.doing}: the container stopped ({explanation})",
                    "see why with `testbed logs NODE` and `testbed status`",
                ) from exc
            if exc.status_code == 409:
                raise EngineError(
                    f"{self.doing}: name conflict: {explanation}",
                    "a container or network of that name exists: `testbed down --run RUN`, "
                    "or remove it with `docker rm -f NAME` if it is not the testbed's",
                ) from exc
            if exc.status_code == 404 and "image" in explanation.lower():
                raise EngineError(
                    f"{self.doing}: image missing: {explanation}",
                    "build it with `testbed images build`",
                ) from exc
            raise EngineError(
                f"{self.doing}: Docker refused: {explanation}",
                "see the message above; `docker info` shows the daemon's state",
            ) from exc
        if "Connection" in str(exc) or "connect" in str(exc):
            raise daemon_error(exc) from exc
        raise EngineError(f"{self.doing}: {exc}", "check `docker info`") from exc
