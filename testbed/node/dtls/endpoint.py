"""DTLS over one asyncio UDP socket: a client with one session, a server with one per peer.

Every datagram in and out passes a ``DatagramSink`` (``WireLog`` or the trust center's
tracker), so the costs reported are what crossed the socket. A clock task pumps sessions that
are handshaking every ``TICK_S`` so that Mbed TLS's retransmission timers fire (see
``session``); established sessions need no tick (application data reliability is the layer
above's: CoAP retransmits its confirmable messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mbedtls import tls

from testbed.node.bootstrap.accounting import Peer
from testbed.node.coap.transport import DatagramSink
from testbed.node.dtls.records import ContentType
from testbed.node.dtls.session import Session, State

TICK_S = 0.05
IDLE_CHECK_S = 30.0
# IPv6 minimum MTU 1280 - 40 (IPv6) - 8 (UDP): a datagram that no link on the way fragments at
# the IP layer; 6LoWPAN fragments it into 802.15.4 frames on the PAN (RFC 4944).
DEFAULT_MTU = 1232


def _peer(address: Any) -> Peer:
    return str(address[0]), int(address[1])


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: _Endpoint) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._datagram(data, _peer(addr))

    def error_received(self, exc: Exception) -> None:
        self.owner._error(exc)


class _Endpoint:
    def __init__(self, mtu: int, sink: DatagramSink | None) -> None:
        self.mtu = mtu
        self.sink = sink
        self.transport: asyncio.DatagramTransport | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._busy = asyncio.Event()  # set when a session starts its handshake

    def _sender(self, peer: Peer, *, connected: bool = False) -> Callable[[bytes], None]:
        def send(datagram: bytes) -> None:
            if self.transport is None or self.transport.is_closing():
                return
            if self.sink is not None:
                self.sink.record("sent", peer, datagram)
            self.transport.sendto(datagram, None if connected else peer)

        return send

    async def _open(self, **kw: Any) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), family=socket.AF_INET6, **kw
        )
        self.transport = transport
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            if not self.handshaking():
                # Idle: no timer to serve until a handshake starts; wake up now and then
                # only for housekeeping (idle sessions).
                self._busy.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._busy.wait(), IDLE_CHECK_S)
            await asyncio.sleep(TICK_S)
            self.tick()

    def tick(self) -> None:
        raise NotImplementedError

    def handshaking(self) -> bool:
        raise NotImplementedError

    def _datagram(self, data: bytes, peer: Peer) -> None:
        raise NotImplementedError

    def _error(self, exc: Exception) -> None:
        pass

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.transport is not None:
            self.transport.close()


class DtlsClient(_Endpoint):
    """One session to ``server``; ``handshake()`` then ``send``/``receive``."""

    def __init__(
        self,
        config: tls.DTLSConfiguration,
        server: Peer,
        *,
        server_hostname: str | None = None,
        mtu: int = DEFAULT_MTU,
        sink: DatagramSink | None = None,
    ) -> None:
        super().__init__(mtu, sink)
        self.server = server
        buffer = tls.ClientContext(config).wrap_buffers(server_hostname)
        self.session = Session(buffer, self._sender(server, connected=True), mtu=mtu)
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._changed = asyncio.Event()
        self.network_error: Exception | None = None
        self.handshake_s: float | None = None

    async def handshake(self, timeout_s: float) -> None:
        """Until established; TimeoutError, or ConnectionError with the library's reason."""
        started = time.monotonic()
        if self.transport is None:
            await self._open(remote_addr=self.server)
        self._step(self.session.pump())
        async with asyncio.timeout(timeout_s):
            while self.session.state is State.HANDSHAKING:
                if self.network_error is not None:
                    raise ConnectionError(str(self.network_error))
                self._changed.clear()
                await self._changed.wait()
        if self.session.state is not State.ESTABLISHED:
            raise ConnectionError(self.session.error or f"session {self.session.state.value}")
        self.handshake_s = time.monotonic() - started

    def handshaking(self) -> bool:
        return self.session.state is State.HANDSHAKING

    def send(self, data: bytes) -> None:
        self.session.write(data)

    async def receive(self) -> bytes | None:
        """The next application data record; None once the server closed the session."""
        return await self._inbox.get()

    def tick(self) -> None:
        if self.session.state is State.HANDSHAKING:
            self._step(self.session.pump())
        self._changed.set()

    def _datagram(self, data: bytes, peer: Peer) -> None:
        if self.sink is not None:
            self.sink.record("received", peer, data)
        self._step(self.session.receive(data))

    def _step(self, data: list[bytes]) -> None:
        for item in data:
            self._inbox.put_nowait(item)
        if self.session.state in (State.CLOSED, State.FAILED):
            self._inbox.put_nowait(None)
        self._changed.set()

    def _error(self, exc: Exception) -> None:
        self.network_error = exc  # ICMP unreachable and the like
        self._changed.set()

    async def close(self) -> None:
        self.session.close()
        await super().close()


class ServerSession(Session):
    def __init__(self, *args: Any, peer: Peer, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.peer = peer
        self.started = time.monotonic()
        self.last_seen = self.started
        self.established_at: float | None = None
        self.psk_identity: str | None = None
        self.admitted: Any = None  # what the owner decided at establishment (e.g. a credential)


class DtlsServer(_Endpoint):
    """Sessions by peer address, created by a ClientHello; at most ``max_sessions`` (the
    least recently active goes first), half-done ones dropped after ``handshake_timeout_s``
    and idle ones after ``idle_timeout_s``."""

    def __init__(
        self,
        config: tls.DTLSConfiguration,
        *,
        on_established: Callable[[ServerSession], None],
        on_data: Callable[[ServerSession, bytes], None],
        mtu: int = DEFAULT_MTU,
        sink: DatagramSink | None = None,
        max_sessions: int = 1024,
        handshake_timeout_s: float = 120.0,
        idle_timeout_s: float = 300.0,
    ) -> None:
        super().__init__(mtu, sink)
        self.context = tls.ServerContext(config)
        self.on_established = on_established
        self.on_data = on_data
        self.max_sessions = max_sessions
        self.handshake_timeout_s = handshake_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.sessions: OrderedDict[Peer, ServerSession] = OrderedDict()
        self.current: ServerSession | None = None  # the session being stepped (PSK lookups)
        self.handshakes_completed = 0
        self.handshakes_failed = 0

    async def start(self, bind: tuple[str, int]) -> None:
        await self._open(local_addr=bind)

    def _datagram(self, data: bytes, peer: Peer) -> None:
        if self.sink is not None:
            self.sink.record("received", peer, data)
        session = self.sessions.get(peer)
        if session is None or session.state in (State.CLOSED, State.FAILED):
            if not _starts_client_hello(data):
                return  # stray record of a session we no longer have: nothing to answer
            session = self._new_session(peer)
        session.last_seen = time.monotonic()
        self.sessions.move_to_end(peer)
        self._step(session, lambda: session.receive(data))

    def _new_session(self, peer: Peer) -> ServerSession:
        self.sessions.pop(peer, None)
        while len(self.sessions) >= self.max_sessions:
            self.sessions.popitem(last=False)
        cookie = f"[{peer[0]}]:{peer[1]}".encode()
        session = ServerSession(
            self.context.wrap_buffers(),
            self._sender(peer),
            mtu=self.mtu,
            cookie_info=cookie,
            peer=peer,
        )
        self.sessions[peer] = session
        self._busy.set()
        return session

    def handshaking(self) -> bool:
        return any(s.state is State.HANDSHAKING for s in self.sessions.values())

    def _step(self, session: ServerSession, action: Callable[[], list[bytes]]) -> None:
        was = session.state
        self.current = session
        try:
            data = action()
        finally:
            self.current = None
        if was is State.HANDSHAKING and session.state is State.ESTABLISHED:
            session.established_at = time.monotonic()
            self.handshakes_completed += 1
            self.on_established(session)
        elif was is State.HANDSHAKING and session.state is State.FAILED:
            self.handshakes_failed += 1
        for item in data:
            self.on_data(session, item)
        if session.state in (State.CLOSED, State.FAILED) and self.sessions.get(session.peer) is (
            session
        ):
            del self.sessions[session.peer]  # a new ClientHello from the peer starts afresh

    def tick(self) -> None:
        now = time.monotonic()
        for peer, session in list(self.sessions.items()):
            if session.state is State.HANDSHAKING:
                if now - session.started > self.handshake_timeout_s:
                    del self.sessions[peer]
                else:
                    self._step(session, session.pump)
            elif session.state is not State.ESTABLISHED or (
                now - session.last_seen > self.idle_timeout_s
            ):
                del self.sessions[peer]

    def send(self, session: ServerSession, data: bytes) -> None:
        session.write(data)

    def drop(self, session: ServerSession) -> None:
        """close_notify and forget."""
        session.close()
        self.sessions.pop(session.peer, None)


def _starts_client_hello(data: bytes) -> bool:
    # Record type handshake, epoch 0, and handshake type client_hello after the headers.
    return (
        len(data) > 13
        and data[0] == ContentType.HANDSHAKE
        and data[3:5] == b"\x00\x00"
        and data[13] == 1
    )
