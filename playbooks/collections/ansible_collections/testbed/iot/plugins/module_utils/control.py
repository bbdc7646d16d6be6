# Copyright: the IoT security testbed authors. Apache-2.0.
"""Client of a testbed node's local control endpoint (HTTP/1.1 + JSON on 127.0.0.1).

The modules of testbed.iot run INSIDE the node (community.docker.docker connection) with the
node's Python, so this uses the standard library only. The endpoint's contract:

    POST /actions/<name>  body: JSON object
        200 {"action": name, "result": {... "changed": bool ...}}
        4xx/5xx {"error": message, "hint": hint}; 409 is an illegal lifecycle transition
"""

from __future__ import annotations

import http.client
import json
import os
from typing import Any

CONFIG_FILE = "/etc/testbed/node.json"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8730
CONTROL_PORT_ENV = "TESTBED_CONTROL_PORT"
CONFLICT = 409


class ControlError(Exception):
    """The endpoint refused an action (status >= 400) or could not be reached (status 0)."""

    def __init__(self, action: str, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.action = action
        self.status = status
        self.message = message
        self.hint = hint

    @property
    def refused(self) -> bool:
        """The node understood and said no (e.g. an illegal transition, a bad image)."""
        return 400 <= self.status < 500

    def describe(self) -> str:
        text = f"{self.action}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


def control_port(config_file: str = CONFIG_FILE) -> int:
    """The node's control port: TESTBED_CONTROL_PORT where the inventory sets it (a packed
    thing, inside its thing host's container), else from node.json, else the default."""
    if os.environ.get(CONTROL_PORT_ENV, "").isdigit():
        return int(os.environ[CONTROL_PORT_ENV])
    try:
        with open(config_file, encoding="utf-8") as handle:
            return int(json.load(handle).get("control_port", DEFAULT_PORT))
    except (OSError, ValueError, AttributeError, TypeError):
        return DEFAULT_PORT


class ControlClient:
    def __init__(self, host: str = DEFAULT_HOST, port: int | None = None, timeout: float = 60.0):
        self.host = host
        self.port = control_port() if port is None else port
        self.timeout = timeout

    def action(
        self, name: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Run an action; its ``result`` object, or ControlError."""
        body = json.dumps(params or {}).encode("utf-8")
        wait = self.timeout if timeout is None else timeout
        try:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=wait)
            try:
                connection.request(
                    "POST",
                    "/actions/" + name,
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                status, raw = response.status, response.read()
            finally:
                connection.close()
        except TimeoutError:
            raise ControlError(
                name, 0, f"no answer from the control endpoint within {wait:.0f} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ControlError(
                name,
                0,
                f"control endpoint {self.host}:{self.port} not reachable: {exc}",
                "is the node process running? (testbed logs NODE)",
            ) from None
        try:
            answer = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            raise ControlError(name, status, f"answer is not JSON: {raw[:200]!r}") from None
        if not isinstance(answer, dict):
            raise ControlError(name, status, f"answer is not a JSON object: {answer!r}")
        if status >= 400:
            raise ControlError(
                name,
                status,
                str(answer.get("error") or f"HTTP {status}"),
                str(answer.get("hint") or ""),
            )
        result = answer.get("result", answer)
        if not isinstance(result, dict):
            result = {"value": result}
        return result


def changed_of(result: dict[str, Any]) -> bool:
    """Whether an action changed the node; an answer without the flag counts as a change."""
    return bool(result.get("changed", True))
