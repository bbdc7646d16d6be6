"""The floor under the radio medium's cost per frame: a hub that does no medium work at all.

    python bench/hub_floor.py [--seconds S] [--nodes 2,10] [--repeat R]

bench/medium.py measures the real hub (``frontend.MediumHub``) in frames per CPU-second at the
channel's pace: a 127-byte frame and its ACK take 4.8 ms of airtime, so a saturated PAN carries
208 frames/s and the hub sleeps between them. This script measures what any hub written in
Python pays for that pace before it models anything: the same datagrams (one 159-byte ZEP
datagram in per frame; the frame out to its receiver one airtime after it came, the ACK out to
its sender 544 us later, in the same wake-up when it falls within the millisecond the
selector's timeout is rounded up to, as the real hub hands them out) and the same timers, and the
same reading discipline (no read while the channel is busy: the next frame is read when the
channel frees, in the wake-up that ends the previous one, or on its arrival when the hub was
idle), with no ZEP parsing, no admission, no medium, no MAC. The nodes (``--nodes``, one UDP
socket each, in a process of their own) run the closed loop of bench/medium.py: node i sends
to node i+1 and sends its next frame when its ACK comes.

Two hubs, each in a process of its own so that its CPU time (user and system,
``time.process_time``) is its own:

- ``asyncio``: the event loop's reader and ``call_at`` timers, as the real hub uses them;
- ``epoll``: a bare loop over ``select.epoll`` and a heap of timers, the least an event loop
  in Python can do.

``us/frame`` is the hub's CPU time per frame carried; 5,000 frames per CPU-second is 200 us.
``wake/f``: the hub's wake-ups per frame (the real hub's are in bench/medium.py's column of
that name).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import heapq
import os
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable

AIRTIME = 0.004256  # s: a 127-byte frame at 250 kbit/s with its preamble
ACK_AFTER = 0.000544  # s from the end of a frame to the end of its ACK (turnaround + ACK)
ROUNDING = 0.001  # epoll_wait's timeout is whole milliseconds, rounded up
DATAGRAM = 159  # a ZEP v2 data header (32 B) and a 127-byte frame
WARMUP = 0.5  # s of traffic before the measured window
Address = tuple[str, int]


def nodes_process(hub: Address, count: int, seconds: float, ready: int) -> None:
    """``count`` nodes in a closed loop: each sends to the next, again when its ACK comes. The
    first two bytes of a frame name the receiver's port (the hub's whole routing)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    frames = [ports[(i + 1) % count].to_bytes(2, "big") + bytes(DATAGRAM - 2) for i in range(count)]
    poller = select.epoll()
    index = {}
    for i, s in enumerate(socks):
        poller.register(s.fileno(), select.EPOLLIN)
        index[s.fileno()] = i
    os.write(ready, b"r")
    for i, s in enumerate(socks):
        s.sendto(frames[i], hub)
    deadline = time.monotonic() + WARMUP + seconds + 2.0
    while time.monotonic() < deadline:
        for fd, _ in poller.poll(0.2):
            i = index[fd]
            if socks[i].recv(2048) == b"A":
                socks[i].sendto(frames[i], hub)


def asyncio_hub(sock: socket.socket, seconds: float) -> tuple[int, int, float]:
    """(frames, wake-ups, CPU s) in the window: the event loop's reader and timers."""
    loop = asyncio.new_event_loop()
    frames = wakes = 0
    free_at = 0.0  # the channel is busy until then
    reading = False

    def take_next() -> None:
        """The channel is free: the next waiting frame goes on the air, or the hub reads again
        when one comes (while the channel is busy it does not read, as the real hub)."""
        nonlocal free_at, reading
        try:
            data, sender = sock.recvfrom(2048)
        except BlockingIOError:
            if not reading:
                loop.add_reader(sock.fileno(), readable)
                reading = True
            return
        if reading:
            loop.remove_reader(sock.fileno())
            reading = False
        start = max(loop.time(), free_at)
        free_at = start + AIRTIME + ACK_AFTER
        to = ("127.0.0.1", int.from_bytes(data[:2], "big"))
        loop.call_at(start + AIRTIME, deliver, data, to, sender, free_at)

    def readable() -> None:
        nonlocal wakes
        wakes += 1
        take_next()

    def deliver(data: bytes, to: Address, sender: Address, ack_at: float) -> None:
        nonlocal frames, wakes
        wakes += 1
        frames += 1
        sock.sendto(data, to)
        if ack_at - loop.time() <= ROUNDING:
            sock.sendto(b"A", sender)
            take_next()
        else:
            loop.call_at(ack_at, ack, sender)

    def ack(sender: Address) -> None:
        nonlocal wakes
        wakes += 1
        sock.sendto(b"A", sender)
        take_next()

    async def window() -> tuple[int, int, float]:
        await asyncio.sleep(WARMUP)
        f0, w0, c0 = frames, wakes, time.process_time()
        await asyncio.sleep(seconds)
        return frames - f0, wakes - w0, time.process_time() - c0

    take_next()
    try:
        return loop.run_until_complete(window())
    finally:
        loop.close()


def epoll_hub(sock: socket.socket, seconds: float) -> tuple[int, int, float]:
    """(frames, wake-ups, CPU s) in the window: select.epoll and a heap of timers."""
    reader = select.epoll()
    reader.register(sock.fileno(), select.EPOLLIN)
    sleeper = select.epoll()  # no descriptors: a wait for the next timer alone
    timers: list[tuple[float, int, Callable[[], None]]] = []
    frames = wakes = order = 0
    free_at = 0.0
    reading = True
    monotonic = time.monotonic

    def at(when: float, call: Callable[[], None]) -> None:
        nonlocal order
        order += 1
        heapq.heappush(timers, (when, order, call))

    def take_next() -> None:
        nonlocal free_at, reading
        try:
            data, sender = sock.recvfrom(2048)
        except BlockingIOError:
            reading = True
            return
        reading = False
        start = max(monotonic(), free_at)
        free_at = start + AIRTIME + ACK_AFTER
        to = ("127.0.0.1", int.from_bytes(data[:2], "big"))
        at(start + AIRTIME, functools.partial(deliver, data, to, sender, free_at))

    def deliver(data: bytes, to: Address, sender: Address, ack_at: float) -> None:
        nonlocal frames
        frames += 1
        sock.sendto(data, to)
        if ack_at - monotonic() <= ROUNDING:
            sock.sendto(b"A", sender)
            take_next()
        else:
            at(ack_at, functools.partial(ack, sender))

    def ack(sender: Address) -> None:
        sock.sendto(b"A", sender)
        take_next()

    begin = monotonic() + WARMUP
    mark: tuple[int, int, float] | None = None
    while True:
        now = monotonic()
        if mark is None and now >= begin:
            mark = (frames, wakes, time.process_time())
        if now >= begin + seconds:
            break
        timeout = max(0.0, timers[0][0] - now) if timers else 0.1
        events = (reader if reading else sleeper).poll(timeout)
        wakes += 1
        if reading and events:
            take_next()
        now = monotonic()
        while timers and timers[0][0] <= now:
            heapq.heappop(timers)[2]()
    assert mark is not None
    return frames - mark[0], wakes - mark[1], time.process_time() - mark[2]


HUBS: dict[str, Callable[[socket.socket, float], tuple[int, int, float]]] = {
    "asyncio": asyncio_hub,
    "epoll": epoll_hub,
}


def measure(kind: str, nodes: int, seconds: float) -> tuple[int, int, float]:
    """One hub and its nodes, each in a child process; (frames, wake-ups, hub CPU s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    ready_r, ready_w = os.pipe()
    result_r, result_w = os.pipe()
    children = []
    pid = os.fork()
    if pid == 0:  # the nodes
        code = 0
        try:
            nodes_process(sock.getsockname(), nodes, seconds, ready_w)
        except BaseException:
            code = 1
        os._exit(code)
    children.append(pid)
    os.read(ready_r, 1)
    pid = os.fork()
    if pid == 0:  # the hub
        code = 0
        try:
            os.write(result_w, " ".join(map(str, HUBS[kind](sock, seconds))).encode())
        except BaseException:
            code = 1
        os._exit(code)
    children.append(pid)
    sock.close()
    statuses = [os.waitpid(child, 0)[1] for child in children]
    os.close(result_w)
    answer = os.read(result_r, 200).split()
    for fd in (ready_r, ready_w, result_r):
        os.close(fd)
    if any(statuses) or len(answer) != 3:
        raise RuntimeError(f"the {kind} hub or its nodes failed (exit statuses {statuses})")
    return int(answer[0]), int(answer[1]), float(answer[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured window per run")
    parser.add_argument("--nodes", default="2,10", help="comma-separated node counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each hub, alternating")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    print(
        f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        f" at start; Python {sys.version.split()[0]}; {args.seconds:g} s per run, "
        f"{args.repeat} runs of each hub, alternating"
    )
    print(
        f"{'hub':<8} {'nodes':>5} {'frames/s':>8} {'frames/CPU-s median (min-max)':>30} "
        f"{'us/frame':>8} {'wake/f':>6}"
    )
    failed = False
    for count in counts:
        runs: dict[str, list[tuple[int, int, float]]] = {kind: [] for kind in HUBS}
        for _ in range(args.repeat):
            for kind in HUBS:
                runs[kind].append(measure(kind, count, args.seconds))
        for kind, results in runs.items():
            if any(frames == 0 or cpu <= 0 for frames, _, cpu in results):
                print(f"{kind:<8} {count:>5}  carried no frame: {results}")
                failed = True
                continue
            rates = [frames / cpu for frames, _, cpu in results]
            per_frame = [cpu / frames * 1e6 for frames, _, cpu in results]
            carried = statistics.median(f for f, _, _ in results) / args.seconds
            print(
                f"{kind:<8} {count:>5} {carried:>8.0f} "
                f"{statistics.median(rates):>12,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
                f"{'':>4} {statistics.median(per_frame):>8.1f} "
                f"{statistics.median(w / f for f, w, _ in results):>6.2f}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
