"""ControlServer in-process with a stand-in target: timeouts, crashes, concurrency."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from typing import Any

import pytest

from testbed.node import control, logs
from testbed.node.control import ControlServer
from testbed.node.errors import ActionError


class FakeTarget:
    def __init__(self) -> None:
        self.ready = True
        self.running = 0
        self.max_running = 0

    def snapshot(self) -> dict[str, Any]:
        return {"fake": True}

    def action_names(self) -> Sequence[str]:
        return ["boom", "slow", "bad"]

    async def dispatch(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name == "boom":
            raise RuntimeError("kaput")
        if name == "bad":
            raise ActionError("bad thing", "do better")
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        return {"params": params}


async def _request(port: int, data: bytes) -> tuple[int, dict[str, Any], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body), head


def _post(name: str, body: bytes = b"") -> bytes:
    return f"POST /actions/{name} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def _with_server(test: Any, target: FakeTarget | None = None) -> Any:
    target = target or FakeTarget()
    server = ControlServer(target, 0, logs.setup("n", "r", stream=io.StringIO()))
    await server.start()
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    try:
        return await test(port, target)
    finally:
        await server.close()


def test_slow_client_gets_408(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control, "REQUEST_TIMEOUT", 0.2)

    async def test(port: int, target: FakeTarget) -> None:
        status, _body, _head = await _request(port, b"GET /ready HTTP/1.1\r\n")  # never finishes
        assert status == 408

    asyncio.run(_with_server(test))


def test_crashing_action_is_500_and_server_survives() -> None:
    async def test(port: int, target: FakeTarget) -> None:
        status, body, _ = await _request(port, _post("boom"))
        assert status == 500
        assert "kaput" in body["error"]
        status, body, _ = await _request(port, _post("bad"))
        assert (status, body) == (400, {"error": "bad thing", "hint": "do better"})
        assert (await _request(port, b"GET /ready HTTP/1.0\r\n\r\n"))[0] == 200

    asyncio.run(_with_server(test))


def test_actions_run_one_at_a_time() -> None:
    async def test(port: int, target: FakeTarget) -> None:
        results = await asyncio.gather(
            *(_request(port, _post("slow", b'{"i": %d}' % i)) for i in range(5))
        )
        assert [r[0] for r in results] == [200] * 5
        assert target.max_running == 1

    asyncio.run(_with_server(test))


def test_405_carries_allow_header() -> None:
    async def test(port: int, target: FakeTarget) -> None:
        status, _body, head = await _request(port, b"DELETE /state HTTP/1.1\r\n\r\n")
        assert status == 405
        assert b"\r\nAllow: GET" in head
        assert b"Connection: close" in head

    asyncio.run(_with_server(test))


def test_not_ready_answers_503() -> None:
    target = FakeTarget()
    target.ready = False

    async def test(port: int, target: FakeTarget) -> None:
        assert (await _request(port, b"GET /ready HTTP/1.1\r\n\r\n"))[:2] == (503, {"ready": False})
        assert (await _request(port, _post("slow")))[0] == 503

    asyncio.run(_with_server(test, target))
