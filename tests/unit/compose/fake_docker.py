"""A recording stand-in for the docker SDK client: what DockerEngine.deploy asks Docker for.

Only the calls ``DockerEngine.deploy`` makes are implemented; each records its arguments, so a
test can compare what the backend creates with what a compose file declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Container:
    image: str
    kwargs: dict[str, Any]
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource -> endpoint


class _Networks:
    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def create(self, name: str, **kwargs: Any) -> None:
        self.created[name] = kwargs


class _Volumes:
    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def create(self, name: str, **kwargs: Any) -> None:
        self.created[name] = kwargs


class _API:
    def __init__(self) -> None:
        self.containers: dict[str, Container] = {}

    def create_endpoint_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def create_networking_config(self, endpoints: dict[str, Any]) -> dict[str, Any]:
        return endpoints

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def create_container(self, image: str, **kwargs: Any) -> dict[str, str]:
        name = kwargs["name"]
        self.containers[name] = Container(image, kwargs, dict(kwargs["networking_config"]))
        return {"Id": name}

    def connect_container_to_network(self, container: str, net: str, **kwargs: Any) -> None:
        self.containers[container].networks[net] = kwargs

    def start(self, container: str) -> None:
        pass

    def inspect_container(self, container: str) -> dict[str, Any]:
        return {"State": {"Running": True, "ExitCode": 0}}

    def exec_create(self, container: str, cmd: list[str]) -> dict[str, str]:
        return {"Id": container}

    def exec_start(self, exec_id: str) -> bytes:
        return b""

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        return {"ExitCode": 0}


class RecordingClient:
    def __init__(self) -> None:
        self.api = _API()
        self.networks = _Networks()
        self.volumes = _Volumes()
