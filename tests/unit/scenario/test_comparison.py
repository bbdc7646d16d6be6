"""The comparison measures: per-profile bootstrap figures from the things' own reports, the
command step (group vs unicast) against a FAKE testbed (the real one runs in
tests/integration/test_comparison_scenarios.py), and a measure's default for a missing path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.errors import StepFailed
from testbed.scenario import comparison, schema, steps
from testbed.scenario.results import PointResult

# A dtls-cert bootstrap as a thing reports it (bytes, datagrams, retransmissions per message).
CERT = {
    "profile": "dtls-cert",
    "duration_s": 0.5,
    "radio": {"frames_sent": 22, "frames_received": 20},
    "messages": [
        {"message": "dtls_client_hello", "direction": "sent", "bytes": 172, "datagrams": 1,
         "retransmissions": 0, "message_bytes": None},
        {"message": "dtls_hello_verify_request", "direction": "received", "bytes": 60,
         "datagrams": 1, "retransmissions": 0, "message_bytes": None},
        {"message": "dtls_client_hello_cookie", "direction": "sent", "bytes": 204,
         "datagrams": 1, "retransmissions": 0, "message_bytes": None},
        {"message": "dtls_server_hello", "direction": "received", "bytes": 898, "datagrams": 1,
         "retransmissions": 0, "message_bytes": None},
        {"message": "dtls_client_finished", "direction": "sent", "bytes": 1892, "datagrams": 2,
         "retransmissions": 1, "message_bytes": None},
        {"message": "dtls_server_finished", "direction": "received", "bytes": 67,
         "datagrams": 1, "retransmissions": 0, "message_bytes": None},
        {"message": "dtls_application_data", "direction": "sent", "bytes": 500, "datagrams": 2,
         "retransmissions": 0, "message_bytes": None},
        {"message": "dtls_application_data", "direction": "received", "bytes": 700,
         "datagrams": 2, "retransmissions": 0, "message_bytes": None},
    ],
}  # fmt: skip
EDHOC = {
    "profile": "edhoc-oscore",
    "duration_s": 0.1,
    "messages": [
        {"message": "edhoc_message_1", "direction": "sent", "bytes": 50, "datagrams": 1,
         "retransmissions": 0, "message_bytes": 38},
        {"message": "edhoc_message_3+oscore_request", "direction": "sent", "bytes": 500,
         "datagrams": 1, "retransmissions": 0, "message_bytes": 19},
    ],
}  # fmt: skip


def test_figures_split_handshake_from_enrolment_and_count_round_trips() -> None:
    got = comparison.figures(CERT)
    assert got["bytes"] == 172 + 60 + 204 + 898 + 1892 + 67 + 500 + 700
    assert got["handshake_bytes"] == 172 + 60 + 204 + 898 + 1892 + 67
    assert got["handshake_datagrams"] == 7 and got["datagrams"] == 11
    assert got["retransmissions"] == 1
    # as first sent: the client's second flight once (1892 B in two datagrams, one a copy)
    assert got["handshake_bytes_first"] == 172 + 60 + 204 + 898 + 946 + 67
    assert got["handshake_datagrams_first"] == 6
    assert got["round_trips"] == 5  # received datagrams that were not retransmissions
    assert got["frames"] == 42 and got["frames_sent"] == 22
    sizes = comparison.figures(EDHOC)
    assert sizes["msg.edhoc_message_1"] == 38
    assert sizes["msg.edhoc_message_3-oscore_request"] == 19  # a valid measure-name part
    name = "boot.edhoc-oscore.msg.edhoc_message_3-oscore_request"
    schema.Expect.model_validate({"measure": name, "min": 1, "message": "m"})


def test_per_profile_rates_count_failed_things_of_their_planned_profile() -> None:
    states = {
        "c1": {"lifecycle": "operational", "bootstrap": CERT},
        "c2": {"lifecycle": "failed", "bootstrap": {}},  # no report: its planned profile counts
        "e1": {"lifecycle": "operational", "bootstrap": EDHOC},
    }
    rows = comparison.per_profile(states, {"c1": "dtls-cert", "c2": "dtls-cert", "e1": ""})
    assert set(rows) == {"dtls-cert", "edhoc-oscore"}
    assert rows["dtls-cert"]["success_rate"] == 0.5 and rows["dtls-cert"]["things"] == 2
    assert rows["dtls-cert"]["handshake_datagrams"] == 7  # the operational one's figures only
    assert rows["edhoc-oscore"]["success_rate"] == 1.0


class FakeTestbed:
    """NOT a testbed: lamps count PUTs; a group request reaches the members, not the revoked."""

    def __init__(self, members: list[str], revoked: list[str]) -> None:
        self.puts = {t: 0 for t in [*members, *revoked]}
        self.members = members
        self.transmissions = 0.0

    def state(self, node: str) -> dict[str, Any]:
        return {"requests": {"handled": {"/light": {"PUT": {"2.04": self.puts[node]}}}}}

    def medium(self, pan: str) -> dict[str, float]:
        assert pan == "floor1"
        t = self.transmissions
        return {"transmissions": t, "busy_ms": 4 * t, "frames_received": 3 * t, "acks": 0.0}

    def group_send(self, pan: str, path: str, value: Any) -> dict[str, Any]:
        self.transmissions += 2
        for member in self.members:
            self.puts[member] += 1
        return {"bytes": 150, "generation": 2}

    def backend_host(self) -> str:
        return "backend"

    def action(self, node: str, action: str, params: dict[str, Any], timeout: float = 30) -> Any:
        assert (node, action) == ("backend", "write")
        self.transmissions += 4
        self.puts[params["thing"]] += 1
        return {"outcome": "ok"}


def _ctx(fake: FakeTestbed) -> steps.Context:
    point = PointResult("s", {"loss": 0.0}, 0, 1)
    return steps.Context(fake, Path("/nonexistent"), Path("/nonexistent"), point)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["group", "unicast"])
def test_command_measures_reach_time_and_the_medium(mode: str) -> None:
    fake = FakeTestbed(["lamp-01", "lamp-02"], ["lamp-03"])
    ctx = _ctx(fake)
    step = schema.Step.model_validate(
        {"command": {"name": mode, "mode": mode, "pan": "floor1", "things": ["lamp-01", "lamp-02"],
                     "outsiders": ["lamp-03"], "value": {"on": False}, "timeout": 5}}
    )  # fmt: skip
    steps.run_step(ctx, step)
    got = {m.name: m.value for m in ctx.point.measurements}
    assert got[f"{mode}.reached"] == 1.0 and got[f"{mode}.outsiders_acted"] == 0
    assert isinstance(got[f"{mode}.time_to_all_s"], float)
    assert got[f"{mode}.transmissions"] == (2 if mode == "group" else 8)
    assert got[f"{mode}.airtime_ms"] == 4 * got[f"{mode}.transmissions"]  # type: ignore[operator]
    assert (f"{mode}.bytes" in got) is (mode == "group")


def test_a_member_that_never_acts_leaves_no_time_and_is_logged() -> None:
    fake = FakeTestbed(["lamp-01"], ["lamp-02"])
    ctx = _ctx(fake)
    args = schema.Command.model_validate(
        {"name": "g", "mode": "group", "pan": "floor1", "things": ["lamp-01", "lamp-02"],
         "value": 1, "timeout": 0.5}
    )  # fmt: skip
    comparison.command(ctx, args)
    got = {m.name: m.value for m in ctx.point.measurements}
    assert got["g.reached"] == 0.5 and got["g.time_to_all_s"] is None
    assert "not acted on by lamp-02" in ctx.point.log[-1]


def test_a_command_needs_things() -> None:
    with pytest.raises(ValueError, match="things"):
        schema.Command.model_validate({"mode": "group", "pan": "p", "things": [], "value": 1})


class StateOnly:
    def state(self, node: str) -> dict[str, Any]:
        return {"requests": {"refused": {}}}


def test_a_measure_default_stands_for_a_missing_path_only_when_given() -> None:
    ctx = _ctx(StateOnly())  # type: ignore[arg-type]
    path = "requests.refused.invalid"
    with_default = schema.Measure.model_validate(
        {"name": "r", "state": "lamp", "path": path, "default": 0}
    )
    steps.measure(ctx, with_default)
    assert ctx.point.value("r") == 0
    without = schema.Measure.model_validate({"name": "r2", "state": "lamp", "path": path})
    with pytest.raises(StepFailed, match="invalid"):
        steps.measure(ctx, without)
