"""testbed.iot.trust_center against a fake trust center endpoint speaking the contract."""

from __future__ import annotations

import base64
from types import ModuleType
from typing import Any

import pytest

from tests.unit.phases.fake_node import FakeTrustCenter, serving
from tests.unit.phases.test_thing_module import run_module

VOUCHER = base64.b64encode(b"voucher-chain").decode()
OTHER = base64.b64encode(b"voucher-chain-extended").decode()
BLOB = base64.b64encode(b"der").decode()


def params(**given: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "serial": "ACME-1",
        "state": "imported",
        "voucher": VOUCHER,
        "idevid": BLOB,
        "ccs": BLOB,
        "reason": "cessationOfOperation",
    }
    return {**base, **given}


def test_import_is_idempotent(tc_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeTrustCenter()) as node:
        c = control.ControlClient(port=node.port)
        first = tc_module.run(params(), c)
        second = tc_module.run(params(), c)
        extended = tc_module.run(params(voucher=OTHER), c)
        assert node.changing_calls == ["import-device", "import-device"]
    assert first["changed"] is True and first["action"] == "import-device"
    assert first["device"]["state"] == "imported"
    assert second["changed"] is False and "action" not in second
    assert extended["changed"] is True


def test_import_without_digest_in_listing_asks_the_node(
    tc_module: ModuleType, control: ModuleType
) -> None:
    with serving(FakeTrustCenter(listing_has_digest=False)) as node:
        c = control.ControlClient(port=node.port)
        tc_module.run(params(), c)
        again = tc_module.run(params(), c)
    assert again["changed"] is False  # the node's own answer decides


def test_check_mode(tc_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeTrustCenter()) as node:
        c = control.ControlClient(port=node.port)
        predicted = tc_module.run(params(), c, check_mode=True, diff=True)
        assert node.changing_calls == []
        tc_module.run(params(), c)
        revoke = tc_module.run(params(state="revoked"), c, check_mode=True, diff=True)
        assert node.changing_calls == ["import-device"]
    assert predicted["changed"] is True
    assert predicted["diff"]["before"] == {"state": None}
    assert predicted["diff"]["after"] == {"state": "imported"}
    assert revoke["changed"] is True
    assert revoke["diff"]["after"] == {"state": "revoked"}


def test_revoke_is_idempotent(tc_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeTrustCenter()) as node:
        c = control.ControlClient(port=node.port)
        tc_module.run(params(), c)
        first = tc_module.run(params(state="revoked"), c)
        second = tc_module.run(params(state="revoked"), c)
        sent = [p for name, p in node.calls if name == "revoke"]
    assert first["changed"] is True and first["device"]["state"] == "revoked"
    assert second["changed"] is False
    assert sent == [{"serial": "ACME-1", "reason": "cessationOfOperation"}]


def test_revoking_an_unknown_serial_fails(tc_module: ModuleType, control: ModuleType) -> None:
    with (
        serving(FakeTrustCenter()) as node,
        pytest.raises(tc_module.ModuleFailure, match="no thing with serial"),
    ):
        tc_module.run(params(state="revoked"), control.ControlClient(port=node.port))


def test_refused_record_fails_with_the_message(tc_module: ModuleType, control: ModuleType) -> None:
    foreign = base64.b64encode(b"foreign-owner").decode()
    with serving(FakeTrustCenter()) as node, pytest.raises(tc_module.ModuleFailure) as caught:
        tc_module.run(params(voucher=foreign), control.ControlClient(port=node.port))
    assert "names another owner" in caught.value.msg
    assert caught.value.result["http_status"] == 400


def test_bad_base64_fails_before_any_change(tc_module: ModuleType, control: ModuleType) -> None:
    with serving(FakeTrustCenter()) as node:
        with pytest.raises(tc_module.ModuleFailure, match="voucher is not base64"):
            tc_module.run(params(voucher="!!"), control.ControlClient(port=node.port))
        assert node.changing_calls == []


def test_devices_listing_shapes(tc_module: ModuleType) -> None:
    as_list = {"devices": [{"serial": "A", "state": "imported"}, {"state": "x"}]}
    as_map = {"devices": {"A": {"state": "imported"}}}
    assert tc_module.devices_by_serial(as_list) == {"A": {"serial": "A", "state": "imported"}}
    assert tc_module.devices_by_serial(as_map) == {"A": {"serial": "A", "state": "imported"}}


def test_module_requires_record_for_import() -> None:
    result = run_module("trust_center", {"serial": "A", "state": "imported"})
    assert result["failed"] is True
    assert "voucher" in result["msg"]


def test_module_requires_serial_for_revoke() -> None:
    result = run_module("trust_center", {"state": "revoked"})
    assert result["failed"] is True
    assert "serial" in result["msg"]


def test_without_a_devices_listing_the_answers_decide(
    tc_module: ModuleType, control: ModuleType
) -> None:
    with serving(FakeTrustCenter(has_listing=False)) as node:
        c = control.ControlClient(port=node.port)
        predicted = tc_module.run(params(), c, check_mode=True)
        assert node.changing_calls == [] and predicted["changed"] is True
        assert tc_module.run(params(), c)["changed"] is True
        assert tc_module.run(params(), c)["changed"] is False
        assert tc_module.run(params(state="revoked"), c)["changed"] is True
        second = tc_module.run(params(state="revoked"), c)
    assert second["changed"] is False and second["device"]["state"] == "revoked"


def test_revoke_answer_without_changed_flag(tc_module: ModuleType) -> None:
    assert tc_module.changed_by("revoke", {"previous_state": "revoked"}) is False
    assert tc_module.changed_by("revoke", {"previous_state": "operational"}) is True
