"""The trust center of one operator domain (registrar / configuration entity).

Enrollment (voucher chain checks, LDevID issuance, OSCORE contexts, the SQLite registry in WAL
mode on the state volume) will be started from :meth:`TrustCenterRole.start`.
"""

from __future__ import annotations

from typing import Any

from testbed.node.roles.base import Role


class TrustCenterRole(Role):
    name = "trust_center"
    required_attributes = ("domain",)

    def facts(self) -> dict[str, Any]:
        trusted = self.attribute("trusted-vendors") or ""
        return {
            "domain": self.attribute("domain"),
            "trusted_vendors": [v.strip() for v in trusted.split(",") if v.strip()],
        }
