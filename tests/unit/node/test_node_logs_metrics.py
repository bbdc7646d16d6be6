"""JSON log lines, secret redaction, metric labels and the metrics bind retry."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from testbed.contracts.node_config import Interface, NodeConfig
from testbed.node import logs, metrics
from testbed.node.errors import ServeError
from testbed.node.metrics import NodeMetrics, info_labels
from testbed.node.redact import REDACTED, is_secret_name, scrub


def test_log_line_shape() -> None:
    out = io.StringIO()
    log = logs.setup("thermostat-01", "thing", stream=out)
    log.info("route.installed", prefix="fd00::/64", attempts=2)
    line = json.loads(out.getvalue())
    assert line["node"] == "thermostat-01"
    assert line["role"] == "thing"
    assert line["level"] == "info"
    assert line["event"] == "route.installed"
    assert line["fields"] == {"prefix": "fd00::/64", "attempts": 2}
    assert line["ts"].endswith("Z")


def test_library_loggers_are_json_too() -> None:
    import logging

    out = io.StringIO()
    logs.setup("n", "r", stream=out)
    logging.getLogger("coap-server").warning("hello %s", "world")
    line = json.loads(out.getvalue())
    assert (line["event"], line["fields"]) == ("coap-server", {"message": "hello world"})


def test_secrets_never_reach_the_log() -> None:
    out = io.StringIO()
    log = logs.setup("n", "r", stream=out)
    log.info(
        "enrolled",
        private_key="-----BEGIN PRIVATE KEY-----abc",
        psk="s3cr3t",
        nested={"master_secret": "x", "kid": "01"},
        oscore_key=b"\x00" * 16,
        nonce=b"\x01" * 13,
        public_key="pk",
    )
    text = out.getvalue()
    for secret in ("BEGIN PRIVATE", "s3cr3t", '"x"', "\\u0000"):
        assert secret not in text
    fields = json.loads(text)["fields"]
    assert fields["nested"] == {"master_secret": REDACTED, "kid": "01"}
    assert fields["nonce"] == "<13 bytes>"
    assert fields["public_key"] == "pk"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("psk", True),
        ("private_key", True),
        ("key", True),
        ("oscore-master-secret", True),
        ("kid", False),
        ("key_id", False),
        ("public_key", False),
        ("vendor", False),
        ("monkey", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_scrub_keeps_structure() -> None:
    assert scrub({"a": [1, {"token": "t"}], "b": (2,)}) == {"a": [1, {"token": REDACTED}], "b": [2]}


def config(**attributes: str) -> NodeConfig:
    return NodeConfig(
        run="r",
        building="b",
        node="n",
        role="thing",
        interfaces=(Interface("mgmt", "::1/128"),),
        attributes=attributes,
    )


def test_info_labels_are_valid_and_never_secret() -> None:
    labels = info_labels(
        config(**{"vendor": "acme", "hw-rev": "2", "9lives": "y", "node": "spoof", "psk": "s3cr3t"})
    )
    assert labels == {
        "run": "r",
        "building": "b",
        "node": "n",
        "role": "thing",
        "vendor": "acme",
        "hw_rev": "2",
        "attr_9lives": "y",
    }


def test_metrics_bind_gives_up_after_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "BIND_RETRY_DELAY", 0.05)
    node_metrics = NodeMetrics(config())
    log = logs.setup("n", "r", stream=io.StringIO())
    # No interface holds this address: EADDRNOTAVAIL, as for a tentative address.
    with pytest.raises(ServeError, match="cannot serve metrics"):
        asyncio.run(node_metrics.serve("fd00:dead:beef::1", 0, log, deadline=0.3))


def test_two_nodes_in_one_process_do_not_clash() -> None:
    # Own registries: the same metric names can exist twice (and tests can build nodes freely).
    NodeMetrics(config())
    NodeMetrics(config())
