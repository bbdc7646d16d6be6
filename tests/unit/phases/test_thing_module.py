"""testbed.iot.thing: planning, idempotence, check mode, diff and refusals against a real HTTP
endpoint that speaks the node contract; argument handling through AnsibleModule itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.unit.phases.conftest import COLLECTIONS
from tests.unit.phases.fake_node import FakeNode, FakeThing, serving

DEFAULTS: dict[str, Any] = {
    "state": None,
    "firmware": None,
    "firmware_image": None,
    "rekey": False,
    "rebootstrap": False,
    "transfer_to": None,
    "older_than": None,
    "timeout": 5.0,
    "control_port": None,
    "control_host": "127.0.0.1",
}


def params(**given: Any) -> dict[str, Any]:
    return {**DEFAULTS, **given}


def client(control: ModuleType, node: FakeNode) -> Any:
    return control.ControlClient(port=node.port, timeout=5)


def test_commission_changes_once(thing_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeThing(lifecycle="installed")) as node:
        first = thing_module.run(params(state="operational"), client(control, node))
        second = thing_module.run(params(state="operational"), client(control, node))
    assert first["changed"] is True
    assert first["lifecycle"] == "operational"
    assert [a["action"] for a in first["actions"]] == ["commission"]
    assert first["actions"][0]["params"] == {"timeout": 5.0}
    assert second["changed"] is False
    assert second["actions"] == []
    assert node.changing_calls == ["commission"]


def test_changed_comes_from_the_node(thing_module: ModuleType, control: ModuleType) -> None:
    # The node says the update was a no-op (e.g. the version was installed meanwhile).
    with serving(FakeThing(lifecycle="operational", firmware="1.0.0")) as node:
        thing: Any = node.role
        thing.firmware = "1.1.0"
        result = thing_module.run(params(firmware="1.1.0"), client(control, node))
    assert result["changed"] is False


def test_check_mode_predicts_and_sends_only_reads(
    thing_module: ModuleType, control: ModuleType
) -> None:
    with serving(FakeThing(lifecycle="operational", firmware="1.0.0", generation=1)) as node:
        result = thing_module.run(
            params(firmware="2.0.0", rekey=True), client(control, node), check_mode=True, diff=True
        )
        assert node.changing_calls == []
        assert node.role.firmware == "1.0.0"  # type: ignore[union-attr]
    assert result["changed"] is True
    assert [a["action"] for a in result["actions"]] == ["firmware-update", "rekey"]
    assert result["firmware"] == "2.0.0"
    assert result["status"]["generation"] == 2
    assert "refusals" not in result
    assert result["diff"]["before"] == {
        "lifecycle": "operational",
        "firmware": "1.0.0",
        "domain": "hvac",
        "generation": 1,
    }
    assert result["diff"]["after"]["firmware"] == "2.0.0"
    assert "predicted" in result["diff"]["after_header"]


def test_check_mode_without_differences_is_unchanged(
    thing_module: ModuleType, control: ModuleType
) -> None:
    with serving(FakeThing(lifecycle="operational", firmware="2.0.0")) as node:
        result = thing_module.run(
            params(state="operational", firmware="2.0.0"), client(control, node), check_mode=True
        )
    assert result["changed"] is False
    assert result["actions"] == []


@pytest.mark.parametrize(
    ("thing", "asked", "predicted"),
    [
        (FakeThing(lifecycle="decommissioned"), {"state": "operational"}, "commission: a "),
        (FakeThing(lifecycle="operational", firmware="2.0.0"), {"firmware": "1.1.0"}, "downgrade"),
        (FakeThing(lifecycle="installed"), {"firmware": "2.0.0"}, "not maintained"),
        (FakeThing(lifecycle="maintenance"), {"state": "operational"}, "cannot bootstrap"),
        (FakeThing(lifecycle="installed"), {"rebootstrap": True}, "cannot bootstrap"),
        (FakeThing(lifecycle="installed"), {"rekey": True}, "no keys to rotate"),
        (
            FakeThing(lifecycle="operational"),
            {"transfer_to": {"domain": "l", "trust_center_uri": "u", "trust_center_ccs": "AA=="}},
            "decommissions it first",
        ),
    ],
)
def test_check_mode_predicts_refusals(
    thing_module: ModuleType,
    control: ModuleType,
    thing: FakeThing,
    asked: dict[str, Any],
    predicted: str,
) -> None:
    with serving(thing) as node:
        result = thing_module.run(params(**asked), client(control, node), check_mode=True)
        assert node.changing_calls == []
    assert any(predicted in refusal for refusal in result["refusals"]), result["refusals"]


def test_refusal_fails_with_the_nodes_message(
    thing_module: ModuleType, control: ModuleType
) -> None:
    with (
        serving(FakeThing(lifecycle="operational", firmware="1.0.0")) as node,
        pytest.raises(thing_module.ModuleFailure) as caught,
    ):
        thing_module.run(
            params(firmware="2.0.0", firmware_image="2.0.0-tampered"), client(control, node)
        )
    failure = caught.value
    assert failure.msg == "firmware-update: firmware 2.0.0 refused: digest-mismatch"
    assert failure.result["action"] == "firmware-update"
    # the thing stays operational with the old firmware, and says why
    assert failure.result["status"]["firmware"] == "1.0.0"
    assert failure.result["status"]["reason"] == "firmware-update:digest-mismatch"


def test_downgrade_is_refused_by_the_thing(thing_module: ModuleType, control: ModuleType) -> None:
    with (
        serving(FakeThing(lifecycle="operational", firmware="2.0.0")) as node,
        pytest.raises(thing_module.ModuleFailure, match="refused: downgrade"),
    ):
        thing_module.run(params(firmware="1.1.0"), client(control, node))


def test_commission_that_ends_failed_fails(thing_module: ModuleType, control: ModuleType) -> None:
    with (
        serving(FakeThing(lifecycle="installed", fail_bootstrap=True)) as node,
        pytest.raises(thing_module.ModuleFailure) as caught,
    ):
        thing_module.run(params(state="operational"), client(control, node))
    assert caught.value.msg == "commission: the thing is failed: refused:revoked"
    assert caught.value.result["changed"] is True


def test_outcome_failures(thing_module: ModuleType) -> None:
    failure = thing_module.outcome_failure
    assert failure("commission", {"lifecycle": "bootstrapping", "timed_out": True}) == (
        "still bootstrapping when the timeout ran out"
    )
    assert failure("rekey", {"outcome": "failed", "failure": "timeout"}).startswith(
        "key renewal failed: timeout"
    )
    assert failure("rekey", {"outcome": "renewed"}) is None
    assert failure("firmware-update", {"outcome": "unchanged"}) is None
    assert failure("decommission", {"lifecycle": "decommissioned"}) is None


def test_older_than_is_passed_to_rekey(thing_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeThing(lifecycle="operational")) as node:
        thing_module.run(params(rekey=True, older_than=1700000000.5), client(control, node))
        sent = next(p for name, p in node.calls if name == "rekey")
    assert sent == {"timeout": 5.0, "older_than": 1700000000.5}


def test_decommissioned_thing_cannot_commission_in_its_old_domain(
    thing_module: ModuleType, control: ModuleType
) -> None:
    with (
        serving(FakeThing(lifecycle="decommissioned")) as node,
        pytest.raises(thing_module.ModuleFailure) as caught,
    ):
        thing_module.run(params(state="operational"), client(control, node))
    assert caught.value.msg == "commission: cannot commission a decommissioned thing"


def test_transfer_then_commission_in_one_task(
    thing_module: ModuleType, control: ModuleType
) -> None:
    transfer = {
        "domain": "lighting",
        "trust_center_uri": "coap://[fd00::21]:5683",
        "trust_center_ccs": "AAAA",
    }
    with serving(FakeThing(lifecycle="decommissioned")) as node:
        done = thing_module.run(
            params(transfer_to=transfer, state="operational"), client(control, node)
        )
        again = thing_module.run(
            params(transfer_to=transfer, state="operational"), client(control, node)
        )
        assert [name for name, _ in node.calls if name == "transfer"] == ["transfer"]
        sent = next(p for name, p in node.calls if name == "transfer")
    assert [a["action"] for a in done["actions"]] == ["transfer", "commission"]
    assert done["domain"] == "lighting"
    assert done["lifecycle"] == "operational"
    assert sent == transfer
    assert again["changed"] is False


def test_installed_state(thing_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeThing(lifecycle="manufactured")) as node:
        placed = thing_module.run(params(state="installed"), client(control, node))
        kept = thing_module.run(params(state="installed"), client(control, node))
    assert placed["changed"] and placed["lifecycle"] == "installed"
    assert not kept["changed"]
    with serving(FakeThing(lifecycle="operational")) as node:
        assert not thing_module.run(params(state="installed"), client(control, node))["changed"]
    with (
        serving(FakeThing(lifecycle="decommissioned")) as node,
        pytest.raises(thing_module.ModuleFailure, match="transfer"),
    ):
        thing_module.run(params(state="installed"), client(control, node))


def test_decommission_excludes_maintenance(thing_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeThing()) as node:
        with pytest.raises(thing_module.ModuleFailure, match="excludes"):
            thing_module.run(params(state="decommissioned", rekey=True), client(control, node))
        assert node.calls == []


def test_unreachable_endpoint(thing_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeThing()) as node:
        port = node.port
    with pytest.raises(thing_module.ModuleFailure, match="not reachable"):
        thing_module.run(params(), control.ControlClient(port=port, timeout=2))


def test_version_order(thing_module: ModuleType) -> None:
    key = thing_module.version_key
    assert key("1.10.0") > key("1.9.2") > key("1.9") > key("1.0.0")
    assert key("2.0.0") > key("2.0.0-rc1") or key("2.0.0-rc1") > key("2.0.0")  # total order


# -- through AnsibleModule: argument handling as Ansible does it ---------------------------------


def run_module(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run a module file as Ansible's test harness does (ANSIBLE_MODULE_ARGS on stdin)."""
    path = COLLECTIONS / "ansible_collections/testbed/iot/plugins/modules" / f"{name}.py"
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, str(path)],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    output: dict[str, Any] = json.loads(proc.stdout)
    return output


def test_module_rejects_an_unknown_state() -> None:
    result = run_module("thing", {"state": "broken"})
    assert result["failed"] is True
    assert "state" in result["msg"] and "operational" in result["msg"]


def test_module_requires_transfer_suboptions() -> None:
    result = run_module("thing", {"transfer_to": {"domain": "lighting"}})
    assert result["failed"] is True
    assert "trust_center_uri" in result["msg"]


def test_module_check_mode_end_to_end(thing_node: FakeNode) -> None:
    result = run_module(
        "thing",
        {
            "state": "operational",
            "control_port": thing_node.port,
            "_ansible_check_mode": True,
            "_ansible_diff": True,
        },
    )
    assert result["changed"] is True
    assert result["lifecycle"] == "operational"
    assert result["diff"]["after"]["lifecycle"] == "operational"
    assert thing_node.changing_calls == []


def test_module_failure_carries_the_message() -> None:
    with serving(FakeThing(lifecycle="decommissioned")) as node:
        result = run_module("thing", {"state": "operational", "control_port": node.port})
    assert result["failed"] is True
    assert result["msg"] == "commission: cannot commission a decommissioned thing"
    assert result["http_status"] == 409
