"""A fake control endpoint that speaks the node contract, on a real HTTP socket (127.0.0.1).

It keeps a thing's and a trust center's state the way the real roles describe them, so the
modules of testbed.iot can be run against it: every POST is logged, which lets check-mode tests
prove that nothing but reads was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testbed.node.lifecycle import LifecycleState
from testbed.node.thing.status import ThingStatus

READS = frozenset({"status", "devices"})


class Refused(Exception):
    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@dataclass
class FakeThing:
    lifecycle: str = "installed"
    firmware: str = "1.0.0"
    domain: str | None = "hvac"
    trust_center_uri: str | None = "coap://[fd00::11]:5683"
    ldevid_serial: int | None = None
    generation: int = 0
    releases: tuple[str, ...] = ("1.0.0", "1.1.0", "2.0.0")
    reason: str | None = None
    fail_bootstrap: bool = False

    def status(self) -> dict[str, Any]:
        """The node's status record (testbed.node.thing.status), as the real thing builds it."""
        return ThingStatus(
            lifecycle=LifecycleState(self.lifecycle),
            reason=self.reason,
            firmware=self.firmware,
            domain=self.domain,
            trust_center_uri=self.trust_center_uri,
            ldevid_serial=self.ldevid_serial,
            generation=self.generation,
        ).to_dict()

    def _illegal(self, target: str) -> Refused:
        return Refused(409, f"illegal lifecycle transition {self.lifecycle} -> {target}")

    def act(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name == "status":
            return self.status()
        if name == "transition":
            if (self.lifecycle, params.get("to")) != ("manufactured", "installed"):
                raise self._illegal(str(params.get("to")))
            self.lifecycle = "installed"
            return {"changed": True, **self.status()}
        if name == "commission":
            if self.lifecycle == "operational":
                return {"changed": False, **self.status()}
            if self.lifecycle not in ("installed", "failed", "bootstrapping"):
                raise Refused(409, f"cannot commission a {self.lifecycle} thing")
            if self.fail_bootstrap:
                self.lifecycle, self.reason = "failed", "refused:revoked"
                return {**self.status(), "changed": True, "timed_out": False}
            self.lifecycle, self.generation = "operational", self.generation + 1
            self.ldevid_serial = 0x1D00 + self.generation
            return {**self.status(), "changed": True, "timed_out": False}
        if name == "firmware-update":
            version = str(params["version"])
            image = str(params.get("image", version))
            if self.lifecycle != "operational":
                raise Refused(409, f"cannot update the firmware of a {self.lifecycle} thing")
            if version == self.firmware:
                return {**self.status(), "changed": False, "outcome": "unchanged"}
            refusal = None
            if image.endswith("-tampered"):
                refusal = "digest-mismatch"
            elif version not in self.releases:
                refusal = "unavailable"
            elif _version(version) < _version(self.firmware):
                refusal = "downgrade"
            if refusal is not None:  # a result, not an error: the old firmware stays
                self.reason = f"firmware-update:{refusal}"
                return {
                    **self.status(),
                    "changed": False,
                    "outcome": "refused",
                    "refusal": refusal,
                    "requested": version,
                    "detail": "",
                }
            self.firmware, self.reason = version, None
            return {**self.status(), "changed": True, "outcome": "updated", "requested": version}
        if name == "rekey":
            if self.lifecycle != "operational":
                raise Refused(409, f"a {self.lifecycle} thing has no operational keys")
            self.generation += 1
            self.ldevid_serial = 0x1D00 + self.generation
            return {"changed": True, **self.status()}
        if name == "rebootstrap":
            if self.lifecycle not in ("operational", "failed"):
                raise self._illegal("bootstrapping")
            self.lifecycle, self.generation = "operational", self.generation + 1
            return {"changed": True, **self.status()}
        if name == "decommission":
            if self.lifecycle == "decommissioned":
                return {"changed": False, **self.status()}
            self.lifecycle, self.ldevid_serial = "decommissioned", None
            return {"changed": True, **self.status()}
        if name == "transfer":
            if self.lifecycle != "decommissioned":
                raise self._illegal("installed")
            self.domain = str(params["domain"])
            self.trust_center_uri = str(params["trust_center_uri"])
            self.lifecycle = "installed"
            return {"changed": True, **self.status()}
        raise Refused(404, f"no such action {name!r}")


@dataclass
class FakeTrustCenter:
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    listing_has_digest: bool = True
    has_listing: bool = True

    def act(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name == "devices" and self.has_listing:
            entries = []
            for serial, entry in sorted(self.devices.items()):
                shown = {k: v for k, v in entry.items() if k != "voucher_sha256"}
                if self.listing_has_digest:
                    shown["voucher_sha256"] = entry["voucher_sha256"]
                else:  # what the real trust center lists
                    shown["record"] = True
                entries.append({"serial": serial, **shown})
            return {"devices": entries}
        if name == "import-device":
            voucher = base64.b64decode(params["voucher"])
            if voucher.startswith(b"foreign"):
                raise Refused(400, "device record refused: the voucher names another owner")
            serial = str(params.get("serial") or "SN-1")
            digest = hashlib.sha256(voucher).hexdigest()
            entry = self.devices.get(serial)
            if entry is not None and entry["voucher_sha256"] == digest:
                return {"serial": serial, "changed": False, "state": entry["state"]}
            self.devices[serial] = {"state": "imported", "voucher_sha256": digest}
            return {"serial": serial, "changed": True, "state": "imported"}
        if name == "revoke":
            serial = str(params["serial"])
            if serial not in self.devices:
                raise Refused(400, f"no thing with serial {serial!r} in the registry")
            previous = self.devices[serial]["state"]
            self.devices[serial]["state"] = "revoked"
            return {"serial": serial, "changed": previous != "revoked", "state": "revoked"}
        raise Refused(404, f"no such action {name!r}")


class FakeNode:
    """One control endpoint serving a FakeThing or a FakeTrustCenter."""

    def __init__(self, role: FakeThing | FakeTrustCenter) -> None:
        self.role = role
        self.calls: list[tuple[str, dict[str, Any]]] = []
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                params = json.loads(self.rfile.read(length) or b"{}")
                name = self.path.removeprefix("/actions/")
                node.calls.append((name, params))
                try:
                    status, body = 200, {"action": name, "result": node.role.act(name, params)}
                except Refused as exc:
                    status, body = exc.status, {"error": exc.message, "hint": exc.hint}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def changing_calls(self) -> list[str]:
        return [name for name, _ in self.calls if name not in READS]


@contextmanager
def serving(role: FakeThing | FakeTrustCenter) -> Iterator[FakeNode]:
    node = FakeNode(role)
    node.thread.start()
    try:
        yield node
    finally:
        node.server.shutdown()
        node.server.server_close()
