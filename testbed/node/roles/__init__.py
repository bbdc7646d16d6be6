"""Role registry: role name in node.json -> class implementing it.

Classes are imported on demand, so that a thing never loads the trust center's dependencies
(and a broken optional role cannot keep the others from starting). A new role is a new module
plus one line here.
"""

from __future__ import annotations

import importlib

from testbed.node.errors import UnknownRole
from testbed.node.roles.base import Role

_ROLES: dict[str, str] = {
    "thing": "testbed.node.thing.role:ThingRole",
    "trust_center": "testbed.node.trust_center.role:TrustCenterRole",
    "border_router": "testbed.node.roles.border_router:BorderRouterRole",
    "internet_host": "testbed.node.roles.internet_host:InternetHostRole",
}


def role_names() -> tuple[str, ...]:
    return tuple(_ROLES)


def role_class(name: str) -> type[Role]:
    try:
        target = _ROLES[name]
    except KeyError:
        raise UnknownRole(
            f"unknown role {name!r}",
            f"node.json 'role' must be one of: {', '.join(_ROLES)}",
        ) from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Role) and cls.name == name):
        raise TypeError(f"registry entry {name!r} -> {target} is not a Role named {name!r}")
    return cls
