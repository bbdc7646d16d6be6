"""The role registry and the Role base."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from testbed.contracts.node_config import Interface, NodeConfig
from testbed.node import logs
from testbed.node.errors import ConfigError, UnknownRole
from testbed.node.roles import role_class, role_names
from testbed.node.roles.base import Role, RoleContext
from testbed.node.roles.internet_host import HostKind, InternetHostRole


def ctx(
    tmp_path: Path, role: str, failures: list[BaseException] | None = None, **attributes: str
) -> RoleContext:
    config = NodeConfig(
        run="r",
        building="b",
        node="n",
        role=role,
        interfaces=(Interface("mgmt", "::1/128"),),
        attributes=attributes,
    )
    sink = failures if failures is not None else []
    return RoleContext(config, tmp_path, logs.setup("n", role, stream=io.StringIO()), sink.append)


@pytest.mark.parametrize("name", role_names())
def test_every_registered_role_resolves(name: str) -> None:
    cls = role_class(name)
    assert issubclass(cls, Role)
    assert cls.name == name


def test_registry_has_the_four_roles() -> None:
    assert set(role_names()) == {"thing", "trust_center", "border_router", "internet_host"}


def test_unknown_role() -> None:
    with pytest.raises(UnknownRole) as err:
        role_class("toaster")
    assert err.value.exit_code == 2
    assert "internet_host" in err.value.hint


def test_internet_host_kind(tmp_path: Path) -> None:
    host = InternetHostRole(ctx(tmp_path, "internet_host", kind="vendor-cloud", vendor="acme"))
    assert host.kind is HostKind.VENDOR_CLOUD
    assert host.facts() == {"kind": "vendor-cloud", "vendor": "acme"}
    with pytest.raises(ConfigError):
        InternetHostRole(ctx(tmp_path, "internet_host"))


def test_failing_background_task_is_fatal(tmp_path: Path) -> None:
    failures: list[BaseException] = []
    role = role_class("trust_center")(ctx(tmp_path, "trust_center", failures, domain="hvac"))

    async def crash() -> None:
        raise RuntimeError("registry gone")

    async def forever() -> None:
        await asyncio.sleep(3600)

    async def scenario() -> None:
        role.spawn(crash(), "crash")
        longlived = role.spawn(forever(), "poll")
        await asyncio.sleep(0.01)
        await role.stop()
        assert longlived.cancelled()

    asyncio.run(scenario())
    assert [str(f) for f in failures] == ["registry gone"]
