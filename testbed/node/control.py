"""The node's local control endpoint: a tiny HTTP/1.1 JSON server on asyncio streams.

It listens on 127.0.0.1 only: it is reached from inside the container (the probe, and the
Ansible module the phases run there), never from an experiment network, so it needs no
authentication and can stay free of dependencies.

    GET  /ready           200 {"ready": true} once the role has started, 503 {"ready": false}
    GET  /state           200 node, run, building, role, attributes, network, state (the role's)
    GET  /actions         200 {"actions": [names]}
    POST /actions/<name>  200 {"action": name, "result": {...}}; body: a JSON object or empty

Errors are JSON too: {"error": message, "hint": hint}. 400 malformed request or parameters,
404 unknown path or action, 405 wrong method, 408 request too slow, 409 illegal lifecycle
transition, 411 body without Content-Length, 413 body too large, 431 header too large,
500 action failed. One request per connection (the response says Connection: close): clients
are a handful of local tools, and it removes every keep-alive corner case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from testbed.node.errors import NodeError
from testbed.node.logs import EventLog

HOST = "127.0.0.1"
MAX_HEAD = 16 * 1024  # request line + headers
MAX_BODY = 64 * 1024  # action parameters are small JSON objects
REQUEST_TIMEOUT = 5.0  # for reading the request; a slow action is not limited by this
MAX_CONNECTIONS = 64
LINGER_TIMEOUT = 0.5
_ACTION_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class ControlTarget(Protocol):
    """What the endpoint exposes; implemented by the running node."""

    @property
    def ready(self) -> bool: ...

    def snapshot(self) -> dict[str, Any]: ...

    def action_names(self) -> Sequence[str]: ...

    async def dispatch(self, name: str, params: dict[str, Any]) -> dict[str, Any]: ...


class HttpError(Exception):
    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        hint: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.headers = headers or {}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
        ) from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ConnectionResetError("client closed without a request") from None
        raise HttpError(HTTPStatus.BAD_REQUEST, "incomplete request head") from None
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "request head is not ASCII") from None
    request_line, *header_lines = text[:-4].split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "malformed header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(
            HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not supported", "send Content-Length"
        )
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpError(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY} bytes")
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length") from None
    path = target.split("?", 1)[0]
    return Request(method, path, headers, body)


def parse_params(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise HttpError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
    return params


class ControlServer:
    def __init__(self, target: ControlTarget, port: int, log: EventLog, host: str = HOST) -> None:
        self.target = target
        self.host = host
        self.port = port
        self.log = log
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        # Actions change role state; one at a time keeps roles free of their own locking.
        self._action_lock = asyncio.Lock()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, limit=MAX_HEAD
        )

    async def close(self, timeout: float = 0.3) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=timeout)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            if self._slots.locked():
                await self._respond(
                    writer, HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too many connections"}
                )
                return
            async with self._slots:
                await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # client went away or we are stopping: nothing to answer
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.2)

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers: dict[str, str] = {}
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    request = await read_request(reader)
            except TimeoutError:
                raise HttpError(
                    HTTPStatus.REQUEST_TIMEOUT, "request not received in time"
                ) from None
            status, body = await self._route(request)
        except HttpError as exc:
            status, body, headers = exc.status, _error_body(exc.message, exc.hint), exc.headers
            await self._respond(writer, status, body, headers)
            await _linger(reader, writer)
            return
        await self._respond(writer, status, body, headers)

    async def _route(self, req: Request) -> tuple[HTTPStatus, dict[str, Any]]:
        if req.path == "/ready":
            _require(req, "GET")
            ready = self.target.ready
            return (HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE), {"ready": ready}
        if req.path == "/state":
            _require(req, "GET")
            return HTTPStatus.OK, self.target.snapshot()
        if req.path == "/actions":
            _require(req, "GET")
            return HTTPStatus.OK, {"actions": sorted(self.target.action_names())}
        if req.path.startswith("/actions/"):
            _require(req, "POST")
            return await self._action(req.path.removeprefix("/actions/"), req.body)
        raise HttpError(
            HTTPStatus.NOT_FOUND,
            f"no such path {req.path}",
            "GET /ready, GET /state, GET /actions, POST /actions/<name>",
        )

    async def _action(self, name: str, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        if not _ACTION_NAME.fullmatch(name):
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such action {name!r}")
        params = parse_params(body)
        if not self.target.ready:
            raise HttpError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "node is not ready",
                "wait for GET /ready to answer 200",
            )
        async with self._action_lock:
            try:
                result = await self.target.dispatch(name, params)
            except NodeError as exc:
                self.log.warning("control.action_failed", action=name, error=exc.message)
                return HTTPStatus(exc.http_status), _error_body(exc.message, exc.hint)
            except Exception as exc:
                self.log.exception("control.action_crashed", action=name)
                return HTTPStatus.INTERNAL_SERVER_ERROR, _error_body(f"action failed: {exc!r}")
        self.log.info("control.action", action=name)
        return HTTPStatus.OK, {"action": name, "result": result}

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body, default=str).encode()
        lines = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + payload)
        await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After refusing a request we did not read to its end: closing a socket with unread input
    makes the kernel send RST, which can destroy our response before the client reads it. So
    half-close, then discard what the client still sends, briefly."""
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_TIMEOUT):
            while await reader.read(65536):
                pass


def _require(req: Request, method: str) -> None:
    if req.method != method:
        raise HttpError(
            HTTPStatus.METHOD_NOT_ALLOWED,
            f"{req.path} accepts {method} only",
            headers={"Allow": method},
        )


def _error_body(message: str, hint: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    return body
