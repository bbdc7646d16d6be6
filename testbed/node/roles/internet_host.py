"""A host on the Internet side: the backend service, a vendor cloud, or the attacker.

``kind`` selects what it will run: backend polling and commanding things end to end; firmware
and voucher service for a vendor; DoS and eavesdropping tools for the attacker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from testbed.node.errors import ConfigError
from testbed.node.roles.base import Role, RoleContext


class HostKind(StrEnum):
    BACKEND = "backend"
    VENDOR_CLOUD = "vendor-cloud"
    ATTACKER = "attacker"


class InternetHostRole(Role):
    name = "internet_host"
    required_attributes = ("kind",)

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        raw = self.config.attributes["kind"]
        try:
            self.kind = HostKind(raw)
        except ValueError:
            raise ConfigError(
                f"internet host {self.config.node} has unknown kind {raw!r}",
                "attribute 'kind' must be one of: " + ", ".join(k.value for k in HostKind),
            ) from None

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is HostKind.VENDOR_CLOUD and self.attribute("vendor"):
            facts["vendor"] = self.attribute("vendor")
        return facts
