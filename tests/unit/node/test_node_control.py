"""The control endpoint refuses garbage politely (against the real node process)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.unit.node.node_harness import NodeProcess, http, raw_request


def test_garbage_request_line_is_400(running_thing: NodeProcess) -> None:
    status, body = raw_request(running_thing.control_port, b"garbage\r\n\r\n")
    assert status == 400
    assert "error" in body


@pytest.mark.parametrize(
    "data",
    [
        b"GET /ready HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /ready HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
        b"GET ready HTTP/1.1\r\n\r\n",
        b"GET /ready SPDY/3\r\n\r\n",
        b"GET /r\xffady HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_requests_are_400(running_thing: NodeProcess, data: bytes) -> None:
    assert raw_request(running_thing.control_port, data)[0] == 400


def test_unknown_path_is_404(running_thing: NodeProcess) -> None:
    status, body = http(running_thing.control_port, "GET", "/nope")
    assert status == 404
    assert "hint" in body


def test_unknown_action_is_404_json(running_thing: NodeProcess) -> None:
    status, body = http(running_thing.control_port, "POST", "/actions/self-destruct")
    assert status == 404
    assert "self-destruct" in body["error"]
    assert http(running_thing.control_port, "POST", "/actions/../etc")[0] == 404


def test_wrong_method_is_405(running_thing: NodeProcess) -> None:
    assert http(running_thing.control_port, "POST", "/ready")[0] == 405
    assert http(running_thing.control_port, "GET", "/actions/transition")[0] == 405


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b"{}", 400),  # missing 'to'
        (b'{"to": "on-fire"}', 400),
        (b'{"to": "operational"}', 409),  # installed -> operational skips bootstrapping
    ],
)
def test_bad_action_parameters(running_thing: NodeProcess, body: bytes, status: int) -> None:
    got, answer = http(running_thing.control_port, "POST", "/actions/transition", body)
    assert got == status
    assert answer["error"]
    # and nothing changed
    state = http(running_thing.control_port, "GET", "/state")[1]["state"]
    assert state["lifecycle"] == "installed"


def test_oversized_body_is_413(running_thing: NodeProcess) -> None:
    data = b"POST /actions/transition HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n"
    assert raw_request(running_thing.control_port, data)[0] == 413


def test_oversized_head_is_431(running_thing: NodeProcess) -> None:
    data = b"GET /ready HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    assert raw_request(running_thing.control_port, data)[0] == 431


def test_chunked_body_is_refused(running_thing: NodeProcess) -> None:
    data = b"POST /actions/transition HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert raw_request(running_thing.control_port, data)[0] == 411


def test_client_that_hangs_up_does_not_hurt(running_thing: NodeProcess) -> None:
    for partial in (
        b"",
        b"GET /rea",
        b"POST /actions/transition HTTP/1.1\r\nContent-Length: 9\r\n\r\n{",
    ):
        with socket.create_connection(("127.0.0.1", running_thing.control_port)) as s:
            s.sendall(partial)
    time.sleep(0.1)
    assert http(running_thing.control_port, "GET", "/ready") == (200, {"ready": True})


def test_query_string_is_ignored(running_thing: NodeProcess) -> None:
    assert http(running_thing.control_port, "GET", "/ready?verbose=1")[0] == 200
