"""A scripted stand-in for the docker SDK's networks, volumes and containers: enough for
DockerEngine's removal and network creation, with networks that can be made *stale* (the
daemon refuses their removal for "active endpoints" although none is listed), which is what
Docker 20.10's libnetwork does when its endpoint count drifts (moby/moby#42119) and what no
real daemon does on demand."""

from __future__ import annotations

from typing import Any

import docker.errors
import requests


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(str(status), response=response, explanation=explanation)


class Network:
    def __init__(self, daemon: ScriptedDaemon, name: str, **kwargs: Any) -> None:
        self.daemon = daemon
        self.name = self.id = name
        ipam = kwargs["ipam"]
        pool = ipam["Config"][0]
        self.attrs: dict[str, Any] = {
            "Name": name,
            "Labels": dict(kwargs.get("labels") or {}),
            "Internal": bool(kwargs.get("internal")),
            "EnableIPv6": bool(kwargs.get("enable_ipv6")),
            "IPAM": {"Config": [{"Subnet": pool["Subnet"], "Gateway": pool["Gateway"]}]},
            "Containers": {},
        }
        self.stale = False

    def remove(self) -> None:
        if self.name not in self.daemon.networks.by_name:
            raise docker.errors.NotFound("gone")
        if self.stale or self.attrs["Containers"]:
            raise api_error(
                403,
                f"error while removing network: network {self.name} id "
                f"{self.id} has active endpoints",
            )
        del self.daemon.networks.by_name[self.name]

    def reload(self) -> None:
        pass


class Networks:
    def __init__(self, daemon: ScriptedDaemon) -> None:
        self.daemon = daemon
        self.by_name: dict[str, Network] = {}
        self.created = 0

    def create(self, name: str, **kwargs: Any) -> Network:
        if name in self.by_name:
            raise api_error(409, f"network with name {name} already exists")
        self.created += 1
        self.by_name[name] = Network(self.daemon, name, **kwargs)
        return self.by_name[name]

    def get(self, name: str) -> Network:
        if name not in self.by_name:
            raise docker.errors.NotFound(name)
        return self.by_name[name]

    def list(self, filters: dict[str, Any]) -> list[Network]:
        return [n for n in self.by_name.values() if _matches(n.attrs["Labels"], filters)]


class Volume:
    def __init__(self, daemon: ScriptedDaemon, name: str, labels: dict[str, str]) -> None:
        self.daemon, self.name, self.attrs = daemon, name, {"Labels": labels}

    def remove(self, force: bool = False) -> None:
        self.daemon.volumes.by_name.pop(self.name, None)


class Volumes:
    def __init__(self, daemon: ScriptedDaemon) -> None:
        self.daemon = daemon
        self.by_name: dict[str, Volume] = {}

    def create(self, name: str, labels: dict[str, str]) -> Volume:
        self.by_name[name] = Volume(self.daemon, name, labels)
        return self.by_name[name]

    def list(self, filters: dict[str, Any]) -> list[Volume]:
        return [v for v in self.by_name.values() if _matches(v.attrs["Labels"], filters)]


class Containers:
    def list(self, **kwargs: Any) -> list[Any]:
        return []


class API:
    def disconnect_container_from_network(self, container: str, net: str, force: bool) -> None:
        raise api_error(404, f"endpoint {container} not found")


class ScriptedDaemon:
    def __init__(self) -> None:
        self.networks = Networks(self)
        self.volumes = Volumes(self)
        self.containers = Containers()
        self.api = API()


def _matches(labels: dict[str, str], filters: dict[str, Any]) -> bool:
    wanted = filters.get("label", [])
    for item in [wanted] if isinstance(wanted, str) else wanted:
        key, _, value = item.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True
