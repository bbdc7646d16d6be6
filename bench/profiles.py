"""Benchmark: the three bootstrap profiles side by side, under frame loss.

Things of each profile (edhoc-oscore, dtls-cert, dtls-psk) bootstrap against one real trust
center (TrustCenterRole, in a thread of its own with its own event loop, credentials minted by
testbed.manufacture exactly as `testbed up` mints them, `commissioning: auto` so that vouchers
and PSKs are imported). The things run the real thing-side profiles in the main thread. Every
datagram passes a relay (a third thread) that models the PAN: it counts the IEEE 802.15.4
frames the datagram needs (the testbed's own RFC 6282 compressor and RFC 4944 fragmenter, short
addresses, 116 B per frame, the PAN prefix as IPHC context 0, the trust center's address
inline) and drops the whole datagram if any of its frames is lost (independent frame loss
``--loss``, no MAC retransmissions: the loss left after them).

Per profile and loss rate it prints successes, UDP payload bytes and datagrams per bootstrap
(both directions, retransmissions included), frames, round trips, retransmitted datagrams,
median and p95 duration, and CPU time per bootstrap at the thing and at the trust center
(thread CPU time of each side's event loop). Handshake-only figures (before the first CoAP
request) are printed beside the whole bootstrap.

    .venv/bin/python bench/profiles.py [--things 20] [--loss 0 0.1] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from testbed import manufacture, pki, rundir
from testbed.node import material as M
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapResult,
    FactoryIdentity,
    Outcome,
    TrustCenterRef,
)
from testbed.node.logs import EventLog
from testbed.node.radio.frag import fragment
from testbed.node.radio.iphc import Context
from testbed.node.radio.mac import max_payload
from testbed.node.roles.base import RoleContext
from testbed.node.thing.profiles import profile_for
from testbed.node.trust_center.role import TrustCenterRole
from testbed.plan import make_plan
from testbed.topology import parse_topology

PROFILES = ("edhoc-oscore", "dtls-cert", "dtls-psk")
# The handshake's messages (EDHOC message_3 rides on the first OSCORE request: counted whole).
HANDSHAKE = ("edhoc_message_", "dtls_client_", "dtls_hello_", "dtls_server_")
PAN_PREFIX = bytes.fromhex("fd00000000000001")  # /64 of the emulated PAN
THING_LL = b"\x00\x01"  # short addresses: the thing and the border router
ROUTER_LL = b"\x00\x00"
FRAME_PAYLOAD = max_payload(2, 2)  # 116 B


def topology(n: int) -> str:
    things = "\n".join(
        f"  - {{name: 'p{i}-{{n:03d}}', count: {n}, vendor: acme, model: m,"
        f" profile: {p}, domain: facility, pan: pan0}}"
        for i, p in enumerate(PROFILES)
    )
    return f"""building: bench
vendors:
  - name: acme
    models: [{{name: m, role: thermostat}}]
domains:
  - name: facility
pans:
  - name: pan0
border_routers:
  - name: br1
    pans: [pan0]
commissioning: auto
things:
{things}
"""


def frames(datagram: bytes, from_thing: bool) -> int:
    """802.15.4 frames one UDP datagram takes on the PAN (IPv6 + UDP, compressed)."""
    thing = PAN_PREFIX + b"\x00\x00\x00\xff\xfe\x00" + THING_LL
    tc = bytes.fromhex("fd000000000000020000000000000010")
    src, dst = (thing, tc) if from_thing else (tc, thing)
    udp_len = 8 + len(datagram)
    header = (
        bytes([0x60, 0, 0, 0])
        + udp_len.to_bytes(2, "big")
        + bytes([17, 64])
        + src
        + dst
        + (40000).to_bytes(2, "big")
        + (5684).to_bytes(2, "big")
        + udp_len.to_bytes(2, "big")
        + b"\x00\x00"
    )
    src_ll, dst_ll = (THING_LL, ROUTER_LL) if from_thing else (ROUTER_LL, THING_LL)
    contexts = {0: Context(PAN_PREFIX)}
    return len(
        fragment(
            header + datagram, src_ll, dst_ll, max_payload=FRAME_PAYLOAD, tag=1, contexts=contexts
        )
    )


@dataclass
class Relay:
    """Thing <-> trust center relay for many things (one upstream socket per thing)."""

    server: dict[int, tuple[str, int]]  # listening port -> trust center address
    loss: float
    rng: random.Random
    frames: dict[tuple[str, int], int] = field(default_factory=dict)  # thing addr -> frames

    async def start(self, loop: asyncio.AbstractEventLoop) -> dict[int, int]:
        """Relay ports by trust center port."""
        out: dict[int, int] = {}
        for tc_port, address in self.server.items():
            transport, _ = await loop.create_datagram_endpoint(
                lambda a=address: _Down(self, a), local_addr=("::1", 0)
            )
            out[tc_port] = transport.get_extra_info("sockname")[1]
        return out

    def passes(self, data: bytes, from_thing: bool, thing: tuple[str, int]) -> bool:
        n = frames(data, from_thing)
        self.frames[thing] = self.frames.get(thing, 0) + n
        return all(self.rng.random() >= self.loss for _ in range(n))


class _Down(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, server: tuple[str, int]) -> None:
        self.relay, self.server = relay, server
        self.ups: dict[Any, Any] = {}
        self.waiting: dict[Any, list[bytes]] = {}  # datagrams while the upstream opens
        self.tasks: set[asyncio.Task[None]] = set()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        key = (addr[0], addr[1])
        if self.relay.passes(data, True, key):
            up = self.ups.get(key)
            if up is not None:
                up.sendto(data)
            elif key in self.waiting:
                self.waiting[key].append(data)
            else:
                self.waiting[key] = [data]
                task = asyncio.ensure_future(self._open(key))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _open(self, key: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        down, relay = self, self.relay

        class Up(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                if relay.passes(data, False, key):
                    down.transport.sendto(data, key)

        transport, _ = await loop.create_datagram_endpoint(Up, remote_addr=self.server)
        self.ups[key] = transport
        for data in self.waiting.pop(key):
            transport.sendto(data)


class LoopThread:
    """An event loop in a thread; ``cpu()`` is that thread's CPU time."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._cpu_clock: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.call(self._mark)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _mark(self) -> None:
        self._cpu_clock = time.pthread_getcpuclockid(threading.get_ident())

    def call(self, coro: Callable[[], Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro(), self.loop)
        return future.result()

    def cpu(self) -> float:
        assert self._cpu_clock is not None
        return time.clock_gettime(self._cpu_clock)


def context_for(node_dir: Path, uri: str, timeout: float) -> BootstrapContext:
    device = pki.load_device(node_dir / M.IDENTITY)
    csr = pki.make_csr(device, pki.keys.generate())
    return BootstrapContext(
        node=node_dir.name,
        identity=FactoryIdentity(
            private_key=node_dir / M.DEVICE_KEY_PEM,
            idevid=node_dir / M.IDEVID_DER,
            ccs=node_dir / M.DEVICE_CCS,
            psk=node_dir / M.DEVICE_PSK,
        ),
        trust_center=TrustCenterRef(
            uri=uri,
            ccs=node_dir / M.TRUST_CENTER_CCS,
            ca_certificate=node_dir / M.TRUST_CENTER_CA,
        ),
        csr_der=csr.public_bytes(serialization.Encoding.DER),
        timeout_s=timeout,
    )


def round_trips(result: BootstrapResult) -> float:
    """Answers the thing waited for: datagrams received, not counting retransmitted ones
    (one datagram per flight at the default DTLS MTU of 1,232 B)."""
    return float(
        sum(m.datagrams - m.retransmissions for m in result.messages if m.direction == "received")
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--things", type=int, default=20, help="per profile and loss rate")
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mtu", type=int, nargs="+", default=[1232, 100])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n = args.things * len(args.loss)
    with tempfile.TemporaryDirectory(prefix="bench-profiles-") as tmp:
        run_dir = Path(tmp) / "run"
        plan = make_plan(parse_topology(topology(n), "bench.yaml"), "bench")
        rundir.write_run_dir(plan, run_dir, "")
        manufacture.mint(plan, run_dir)
        tc_node = next(node for node in plan.nodes if node.role == "trust_center")
        state = Path(tmp) / "tc-state"
        state.mkdir(mode=0o700)
        tc_thread, relay_thread = LoopThread(), LoopThread()
        role = TrustCenterRole(
            RoleContext(
                tc_node.config,
                state,
                EventLog(logging.getLogger("bench.tc")),
                lambda exc: print(f"trust center failed: {exc!r}", file=sys.stderr),
                run_dir / "nodes" / tc_node.name,
            ),
            bind=("::1", 0),
            coaps_port=0,
        )
        tc_thread.call(role.start)
        assert role.service is not None and role.service._dtls is not None
        coap, coaps = role.service.port, role.service._dtls.port
        things: dict[str, list[Path]] = {p: [] for p in PROFILES}
        for node in plan.nodes:
            if node.role == "thing":
                things[node.config.attributes["profile"]].append(run_dir / "nodes" / node.name)
        print(
            f"{'profile':<13} {'loss':>5} {'ok':>6} {'hs B':>6} {'hs dg':>5} {'B':>6} {'dg':>4}"
            f" {'frames':>6} {'RT':>3} {'retx':>5} {'median s':>8} {'p95 s':>7}"
            f" {'cpu thing ms':>12} {'cpu tc ms':>9}"
        )
        for li, loss in enumerate(args.loss):
            for profile in PROFILES:
                rng = random.Random(args.seed + li)
                relay = Relay({coap: ("::1", coap), coaps: ("::1", coaps)}, loss, rng)
                ports = relay_thread.call(lambda r=relay: r.start(relay_thread.loop))
                dirs = things[profile][li * args.things : (li + 1) * args.things]
                tc_cpu0 = tc_thread.cpu()
                cpu0 = time.thread_time()
                samples = asyncio.run(
                    run_profile(profile, dirs, ports[coap], ports[coaps], relay, args)
                )
                thing_cpu = time.thread_time() - cpu0
                tc_cpu = tc_thread.cpu() - tc_cpu0
                frames_total = sum(relay.frames.values())
                report(profile, loss, samples, frames_total, thing_cpu, tc_cpu)
        print()
        print("DTLS handshake alone, in memory (no loss), by MTU: bytes / datagrams")
        server_config = role.service._dtls.configuration()
        for profile in ("dtls-cert", "dtls-psk"):
            made = profile_for(profile)
            ctx = context_for(things[profile][0], "coap://[::1]:1", args.timeout)
            client_config = made.configuration(ctx)  # type: ignore[attr-defined]
            cells = []
            for mtu in args.mtu:
                size, count = handshake_at_mtu(server_config, client_config, mtu, profile)
                cells.append(f"MTU {mtu}: {size} B / {count}")
            print(f"  {profile:<10} " + ", ".join(cells))
        tc_thread.call(role.stop)


def handshake_at_mtu(
    server_config: Any, client_config: Any, mtu: int, profile: str
) -> tuple[int, int]:
    """One handshake between two sessions wired back to back; (bytes, datagrams)."""
    from mbedtls import tls

    from testbed.node.dtls.credentials import TRUST_CENTER_NAME
    from testbed.node.dtls.session import Session, State

    wire: list[tuple[str, bytes]] = []
    hostname = TRUST_CENTER_NAME if profile == "dtls-cert" else None
    client = Session(
        tls.ClientContext(client_config).wrap_buffers(hostname),
        lambda d: wire.append(("client", d)),
        mtu=mtu,
    )
    server = Session(
        tls.ServerContext(server_config).wrap_buffers(),
        lambda d: wire.append(("server", d)),
        mtu=mtu,
        cookie_info=b"bench",
    )
    client.pump()
    delivered = 0
    while delivered < len(wire):  # each delivery may append the answer to ``wire``
        sender, datagram = wire[delivered]
        delivered += 1
        (server if sender == "client" else client).receive(datagram)
    if client.state is not State.ESTABLISHED:
        raise RuntimeError(f"{profile} handshake at MTU {mtu}: {client.error or server.error}")
    return sum(len(d) for _, d in wire), len(wire)


async def run_profile(
    profile: str, dirs: list[Path], coap: int, coaps: int, relay: Relay, args: Any
) -> list[BootstrapResult]:
    limit = asyncio.Semaphore(args.concurrency)
    made = profile_for(profile)
    if hasattr(made, "port"):
        made.port = coaps  # type: ignore[attr-defined]

    async def one(node_dir: Path) -> BootstrapResult:
        async with limit:
            ctx = context_for(node_dir, f"coap://[::1]:{coap}", args.timeout)
            return await made.bootstrap(ctx)

    return list(await asyncio.gather(*(one(d) for d in dirs)))


def report(
    profile: str,
    loss: float,
    samples: list[BootstrapResult],
    frames_total: int,
    thing_cpu: float,
    tc_cpu: float,
) -> None:
    """One line; per-bootstrap medians except frames (mean over all attempts, relay count)."""
    ok = [r for r in samples if r.outcome is Outcome.SUCCESS]
    if not ok:
        print(f"{profile:<13} {loss:>5.0%}      0/{len(samples)}")
        return

    def per(f: Callable[[BootstrapResult], float]) -> float:
        return statistics.median(f(r) for r in ok)

    def hs(r: BootstrapResult) -> tuple[int, int]:
        chosen = [m for m in r.messages if m.message.startswith(HANDSHAKE)]
        return sum(m.bytes for m in chosen), sum(m.datagrams for m in chosen)

    total = lambda r: r.total("sent")[0] + r.total("received")[0]  # noqa: E731
    datagrams = lambda r: r.total("sent")[1] + r.total("received")[1]  # noqa: E731
    times = [r.duration_s for r in ok]
    failed = (
        statistics.multimode([r.reason.value for r in samples if r.reason])
        if len(ok) < len(samples)
        else []
    )
    print(
        f"{profile:<13} {loss:>5.0%} {len(ok):>3}/{len(samples):<2} {per(lambda r: hs(r)[0]):>6.0f}"
        f" {per(lambda r: hs(r)[1]):>5.0f} {per(total):>6.0f} {per(datagrams):>4.0f}"
        f" {frames_total / len(samples):>6.1f} {per(round_trips):>3.0f}"
        f" {sum(r.retransmissions for r in ok):>5}"
        f" {statistics.median(times):>8.3f} {pct(times, 0.95):>7.3f}"
        f" {1000 * thing_cpu / len(samples):>12.1f} {1000 * tc_cpu / len(samples):>9.1f}"
        + (f"  failed: {', '.join(failed)}" if failed else "")
    )


if __name__ == "__main__":
    main()
