"""`testbed group` through a fake backend: which router relays, which backend signs, what is
sent; and what the router's relay lets through (Group OSCORE group-mode requests only)."""

from __future__ import annotations

import json
from typing import Any

import aiocoap
import pytest
from aiocoap.numbers.types import Type

from testbed.engines.base import ExecResult, NodeStatus
from testbed.errors import GroupCommandError
from testbed.links.group import send_group_command
from testbed.node.coap import group
from testbed.node.coap.credentials import EdhocIdentity
from testbed.node.coap.group_relay import group_request
from testbed.node.trust_center import contexts


class FakeEngine:
    def __init__(self, backends: int = 1) -> None:
        self.backends = backends
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def status(self, run: str | None = None) -> list[NodeStatus]:
        router = NodeStatus(
            run="r", node="br1", role="border_router", kind="", state="running", resource="x",
            image="i", attributes={"pans": "hall"}, addresses={"pan-hall": "fd00:1::2"},
        )  # fmt: skip
        hosts = [
            NodeStatus("r", f"backend-{i}", "internet_host", "backend", "running", "y", "i")
            for i in range(self.backends)
        ]
        attacker = NodeStatus("r", "mallory", "internet_host", "attacker", "running", "z", "i")
        return [router, *hosts, attacker]

    def exec(self, run: str, node: str, command: list[str]) -> ExecResult:
        action, params = command[4], json.loads(command[5])
        self.calls.append((node, action, params))
        answer = {"relay": params.get("relay"), "generation": 3, "bytes": 112}
        return ExecResult(0, json.dumps({"result": answer}).encode())


def test_the_backend_sends_through_the_router_of_the_pan() -> None:
    backend = FakeEngine()
    out = send_group_command(backend, "r", "hall", "light", {"on": False})  # type: ignore[arg-type]
    assert backend.calls == [
        ("backend-0", "group", {"relay": "fd00:1::2", "path": "light", "value": {"on": False}})
    ]
    assert (out.router, out.backend, out.sent["generation"]) == ("br1", "backend-0", 3)
    assert out.medium == {}  # a bridge PAN has no medium counters


def test_several_backends_need_a_name() -> None:
    backend = FakeEngine(backends=2)
    with pytest.raises(GroupCommandError, match="found: backend-0, backend-1"):
        send_group_command(backend, "r", "hall", "light", {"on": False})  # type: ignore[arg-type]
    send_group_command(
        backend,  # type: ignore[arg-type]
        "r", "hall", "light", {"on": True}, backend_name="backend-1", domain="facility",
    )  # fmt: skip
    assert backend.calls[-1][0] == "backend-1" and backend.calls[-1][2]["domain"] == "facility"


def test_the_relay_forwards_group_mode_requests_only() -> None:
    tc, backend = EdhocIdentity.generate(b"\x01"), EdhocIdentity.generate(b"\x02")
    group_id, secret, salt = contexts.fresh_group()
    sender = group.commander(
        group.GroupKey(group_id, secret, salt, 1),
        backend.private_key,
        backend.credential.encoded,
        tc.credential.encoded,
    )
    assert group_request(group.protect(sender, group.command("light", b"\xa0")))
    plain = aiocoap.Message(code=aiocoap.PUT, uri="coap://[ff05::fd]/light", payload=b"\xa0")
    plain.mtype, plain.mid = Type.NON, 7
    assert not group_request(plain.encode())
    # A pairwise OSCORE request: OSCORE option without the group flag.
    pairwise = aiocoap.Message(code=aiocoap.POST, payload=b"\x00" * 12)
    pairwise.mtype, pairwise.mid = Type.NON, 8
    pairwise.opt.oscore = b"\x09\x01\x02"
    assert not group_request(pairwise.encode())
    assert not group_request(b"") and not group_request(b"\xff" * 30)
