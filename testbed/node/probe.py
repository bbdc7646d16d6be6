"""Health and reachability probes, run by the host through ``docker exec``.

    python3 -m testbed.node.probe ready [--port N] [--timeout S] [--wait S]
        exit 0 when the control endpoint answers GET /ready with 200, else 1; prints its JSON.
        With --wait, asks again every 50 ms until it does or S seconds passed: the host then
        needs one exec per node instead of one per poll (each exec starts an interpreter).
    python3 -m testbed.node.probe state [--port N]
        prints GET /state; exit 0 on 200.
    python3 -m testbed.node.probe action NAME ['{"json": "params"}'] [--port N]
        POST /actions/NAME with the JSON object; prints the answer; exit 0 on 200.
    python3 -m testbed.node.probe reach IPV6ADDR [--count 3] [--timeout 2]
        ICMPv6 echo; exit 0 if any reply came back, else 1; prints the RTTs as JSON.
    python3 -m testbed.node.probe state [--port N] [--timeout S]
        prints the control endpoint's GET /state JSON (a thing's lifecycle, its last bootstrap
        and what it cost, request counts); exit 0 on 200, else 1.

The host calls this many times per node during bring-up, so it must start fast: standard library
only (socket, struct, json, argparse), nothing from the rest of testbed.node. The images ship no
ping binary, hence the raw ICMPv6 socket here.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

# Same defaults as testbed.contracts.node_config (a test keeps them equal); not imported, to
# stay light.
CONFIG_FILE = "/etc/testbed/node.json"
CONTROL_PORT = 8730
CONTROL_HOST = "127.0.0.1"
CONTROL_PORT_ENV = "TESTBED_CONTROL_PORT"

ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129


def _control_port(config_path: str) -> int:
    """The node's control port: TESTBED_CONTROL_PORT where the caller sets it (a packed thing,
    inside its thing host's container: the host side's exec does), else from its config."""
    if os.environ.get(CONTROL_PORT_ENV, "").isdigit():
        return int(os.environ[CONTROL_PORT_ENV])
    try:
        with open(config_path) as f:
            return int(json.load(f).get("control_port", CONTROL_PORT))
    except (OSError, ValueError, AttributeError):
        return CONTROL_PORT


def _http_get(host: str, port: int, path: str, timeout: float) -> tuple[int, bytes]:
    return _http(host, port, "GET", path, b"", timeout)


def _http(
    host: str, port: int, method: str, path: str, body: bytes, timeout: float
) -> tuple[int, bytes]:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(request.encode("ascii") + body)
        chunks = []
        while chunk := sock.recv(65536):  # the server closes after one response
            chunks.append(chunk)
    head, _, answer = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[:80]!r}")
    return int(status_line[1]), answer


READY_WAIT_POLL = 0.05


def ready(port: int, timeout: float, host: str = CONTROL_HOST, wait: float = 0.0) -> int:
    """GET /ready once, or (``wait`` > 0) until it answers 200 or ``wait`` seconds passed;
    prints the last answer."""
    give_up = time.monotonic() + wait
    while True:
        code, answer = _ready_once(host, port, timeout)
        if code == 0 or time.monotonic() >= give_up:
            _emit(answer)
            return code
        time.sleep(READY_WAIT_POLL)


def _ready_once(host: str, port: int, timeout: float) -> tuple[int, Any]:
    try:
        status, body = _http_get(host, port, "/ready", timeout)
    except (OSError, ValueError) as exc:
        return 1, {"ready": False, "error": str(exc) or type(exc).__name__, "port": port}
    try:
        answer: Any = json.loads(body)
    except ValueError:
        answer = {"ready": False, "status": status, "body": body.decode(errors="replace")}
    return (0 if status == 200 else 1), answer


def state(port: int, timeout: float, host: str = CONTROL_HOST) -> int:
    try:
        status, body = _http_get(host, port, "/state", timeout)
        answer: Any = json.loads(body)
    except (OSError, ValueError) as exc:
        _emit({"error": str(exc) or type(exc).__name__, "port": port})
        return 1
    _emit(answer)
    return 0 if status == 200 else 1


def action(port: int, name: str, params: str, timeout: float, host: str = CONTROL_HOST) -> int:
    try:
        json.loads(params)
    except ValueError as exc:
        _emit({"error": f"parameters are not JSON: {exc}"})
        return 2
    try:
        status, body = _http(host, port, "POST", f"/actions/{name}", params.encode(), timeout)
        answer: Any = json.loads(body)
    except (OSError, ValueError) as exc:
        _emit({"error": str(exc) or type(exc).__name__, "port": port})
        return 1
    _emit(answer)
    return 0 if status == 200 else 1


def _open_icmp6() -> tuple[socket.socket, bool]:
    """A raw ICMPv6 socket (root/CAP_NET_RAW); else an unprivileged ping socket.

    Returns the socket and whether it is raw. On both, Linux computes the ICMPv6 checksum
    (RFC 3542: it is mandatory for ICMPv6 raw sockets), so we send it as zero.
    """
    try:
        return socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6), True
    except PermissionError:
        # Allowed when the gid is in net.ipv4.ping_group_range (it covers IPv6 too).
        return socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6), False


def reach(target: str, count: int, timeout: float) -> int:
    result: dict[str, Any] = {"target": target, "sent": 0, "received": 0, "rtt_ms": []}
    try:
        # getaddrinfo keeps the scope of link-local targets ("fe80::1%eth0").
        sockaddr = socket.getaddrinfo(target, None, socket.AF_INET6, socket.SOCK_RAW)[0][4]
        sock, raw = _open_icmp6()
    except OSError as exc:
        result["error"] = str(exc)
        _emit(result)
        return 1
    ident = os.getpid() & 0xFFFF
    errors: list[str] = []
    with sock:
        for seq in range(1, count + 1):
            payload = struct.pack("!d", time.time()) + b"testbed-reach"
            packet = struct.pack("!BBHHH", ICMP6_ECHO_REQUEST, 0, 0, ident, seq) + payload
            sent_at = time.monotonic()
            try:
                sock.sendto(packet, sockaddr)
            except OSError as exc:
                errors.append(str(exc))
                continue
            result["sent"] += 1
            rtt = _await_reply(sock, ident if raw else None, seq, sent_at, timeout)
            if rtt is not None:
                result["received"] += 1
                result["rtt_ms"].append(round(rtt * 1000, 3))
    if errors:
        result["errors"] = sorted(set(errors))
    _emit(result)
    return 0 if result["received"] else 1


def _await_reply(
    sock: socket.socket, ident: int | None, seq: int, sent_at: float, timeout: float
) -> float | None:
    """Seconds until our echo reply arrived, or None. A raw socket sees every ICMPv6 packet
    of the host (our own request too, on loopback), so match type, identifier and sequence;
    a ping socket rewrites the identifier and only delivers our replies."""
    deadline = sent_at + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            break
        data = sock.recv(2048)
        if len(data) < 8:
            continue
        kind, _code, _csum, rid, rseq = struct.unpack("!BBHHH", data[:8])
        if kind == ICMP6_ECHO_REPLY and rseq == seq and (ident is None or rid == ident):
            return time.monotonic() - sent_at
    return None


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m testbed.node.probe")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_ready = sub.add_parser("ready", help="is the node's role up? (GET /ready)")
    p_ready.add_argument("--port", type=int, help="control port (default: from node.json)")
    p_ready.add_argument("--config", default=CONFIG_FILE, help="node.json to read the port from")
    p_ready.add_argument("--timeout", type=float, default=2.0)
    p_ready.add_argument(
        "--wait", type=float, default=0.0, help="ask again until ready or S seconds passed"
    )
    p_state = sub.add_parser("state", help="the node's state (GET /state)")
    p_state.add_argument("--port", type=int, help="control port (default: from node.json)")
    p_state.add_argument("--config", default=CONFIG_FILE, help="node.json to read the port from")
    p_state.add_argument("--timeout", type=float, default=5.0)
    p_action = sub.add_parser("action", help="run a control action (POST /actions/NAME)")
    p_action.add_argument("name")
    p_action.add_argument("params", nargs="?", default="{}", help="JSON object")
    p_action.add_argument("--port", type=int, help="control port (default: from node.json)")
    p_action.add_argument("--config", default=CONFIG_FILE, help="node.json to read the port from")
    p_action.add_argument("--timeout", type=float, default=30.0)
    p_reach = sub.add_parser("reach", help="ICMPv6 echo to an address")
    p_reach.add_argument("address")
    p_reach.add_argument("--count", type=int, default=3)
    p_reach.add_argument("--timeout", type=float, default=2.0, help="seconds per echo")
    args = parser.parse_args(argv)
    if args.cmd == "ready":
        port = args.port if args.port is not None else _control_port(args.config)
        return ready(port, args.timeout, wait=max(args.wait, 0.0))
    if args.cmd == "state":
        port = args.port if args.port is not None else _control_port(args.config)
        return state(port, args.timeout)
    if args.cmd == "action":
        port = args.port if args.port is not None else _control_port(args.config)
        return action(port, args.name, args.params, args.timeout)
    if args.count < 1 or args.timeout <= 0:
        parser.error("--count must be >= 1 and --timeout > 0")
    return reach(args.address, args.count, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
