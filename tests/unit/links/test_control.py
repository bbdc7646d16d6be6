"""Links of a run through a fake backend: which router, which action, what the CLI shows."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from testbed.engines.base import ExecResult, NodeStatus
from testbed.links.control import LinkActionError, Links
from testbed.links.options import LinkName, LinkOptionError

RADIO = json.dumps({"loss": 0.0, "max_frame_retries": 3})


class FakeEngine:
    def __init__(self, answers: dict[str, Any], fail: str = "") -> None:
        self.answers = answers
        self.fail = fail
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def status(self, run: str | None = None) -> list[NodeStatus]:
        router = NodeStatus(
            run="r", node="br1", role="border_router", kind="", state="running", resource="x",
            image="i", attributes={"pans": "floor1,hall", "radio-floor1": RADIO},
        )  # fmt: skip
        thing = NodeStatus("r", "t1", "thing", "", "running", "y", "i")
        return [router, thing]

    def exec(self, run: str, node: str, command: list[str]) -> ExecResult:
        action, params = command[4], json.loads(command[5])
        self.calls.append((node, action, params))
        if action == self.fail:
            body = {"error": "jitter: must not exceed the delay", "hint": "check jitter"}
            return ExecResult(1, json.dumps(body).encode())
        return ExecResult(0, json.dumps({"result": self.answers.get(action, {})}).encode())


SHAPING = {
    "implementation": "userspace-tap",
    "reason": "no kernel netem here",
    "links": {
        "internet": {"implementation": "userspace-tap", "device": "eth2",
                     "describe": "delay 50ms", "counts": {"shaped": 10}},
        "backbone": {"implementation": "userspace-tap", "device": "eth1", "describe": "none"},
    },
}  # fmt: skip
MEDIUM = {
    "floor1": {
        "default_link": {"loss": 0.1},
        "medium": {"nodes": {"br1": {"transmissions": 5, "retries": 2,
                                     "dropped": {"channel-loss": 1}}}},
    }
}  # fmt: skip


def test_show_lists_ip_radio_and_bridge_links() -> None:
    backend = FakeEngine({"shaping-show": SHAPING, "link-show": MEDIUM})
    rows = {r.link: r for r in Links(backend, "r").show()}  # type: ignore[arg-type]
    assert set(rows) == {"internet", "backbone", "pan-floor1", "pan-hall"}
    assert rows["internet"].implementation == "userspace-tap"
    assert rows["internet"].impairment == "delay 50ms" and rows["internet"].counts["shaped"] == 10
    assert rows["pan-floor1"].impairment == "frame loss 10%, MAC retries 3"
    assert rows["pan-floor1"].counts["retries"] == 2
    assert rows["pan-hall"].kind == "bridge" and "medium: radio" in rows["pan-hall"].impairment


def test_set_and_reset_reach_the_right_actions() -> None:
    backend = FakeEngine({"link-set": {"loss": 0.2}})
    links = Links(backend, "r")  # type: ignore[arg-type]
    links.set_ip(LinkName("ip", "internet"), {"delay": 0.05})
    links.set_pan(LinkName("pan", "floor1"), {"pan": "floor1", "loss": 0.2})
    links.reset_ip(LinkName("ip", "backbone"))
    links.reset_pan(LinkName("pan", "floor1"))
    assert [(a, p) for _, a, p in backend.calls] == [
        ("shaping-set", {"link": "internet", "impairment": {"delay": 0.05}}),
        ("link-set", {"pan": "floor1", "loss": 0.2}),
        ("shaping-reset", {"link": "backbone"}),
        ("link-reset", {"pan": "floor1"}),
    ]


def test_bridge_pans_say_what_they_lack() -> None:
    links = Links(FakeEngine({}), "r")  # type: ignore[arg-type]
    with pytest.raises(LinkOptionError, match="bridge PAN") as info:
        links.set_pan(LinkName("pan", "hall"), {"pan": "hall", "loss": 0.1})
    assert "medium: radio" in info.value.hint
    with pytest.raises(LinkOptionError, match="no PAN 'attic'"):
        links.capture(LinkName("pan", "attic"), 1.0)


def test_a_refusal_carries_the_nodes_words() -> None:
    links = Links(FakeEngine({}, fail="shaping-set"), "r")  # type: ignore[arg-type]
    with pytest.raises(LinkActionError, match="jitter: must not exceed") as info:
        links.set_ip(LinkName("ip", "internet"), {"jitter": 0.1})
    assert info.value.hint == "check jitter"


def test_capture_decodes_the_pcap() -> None:
    answer = {"pcap_b64": base64.b64encode(b"PCAP").decode(), "frames": 3, "context0": "fd::/64"}
    backend = FakeEngine({"capture": answer})
    pcap, info = Links(backend, "r").capture(LinkName("pan", "floor1"), 2.0)  # type: ignore[arg-type]
    assert pcap == b"PCAP" and info["frames"] == 3
    assert backend.calls[0][2] == {"pan": "floor1", "duration": 2.0}
