"""One DTLS 1.2 association over Mbed TLS's buffer API, datagram in, datagrams out.

``TLSWrappedBuffer`` does the protocol; this class moves bytes: a received datagram goes into
the buffer, the handshake is stepped, and whatever the library wrote is cut into records and
packed into datagrams of at most ``mtu`` bytes (``records.Packer``). Mbed TLS keeps the
retransmission timers of the handshake (RFC 6347 4.2.4: initial ``handshake_timeout_min``,
doubled up to ``handshake_timeout_max``) but only looks at them when it is called, so the owner
calls ``pump`` on a clock tick as well as on every datagram: a lost flight is resent by the
tick, not by the next datagram that will never come.

The server side answers a ClientHello without a valid cookie with a HelloVerifyRequest
(RFC 6347 4.2.1); the cookie is bound to ``cookie_info`` (the client's address).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable

from mbedtls import tls
from mbedtls.exceptions import TLSError

from testbed.node.dtls.records import Packer

OUTPUT_CHUNK = 1 << 16
READ_CHUNK = 1 << 14
PEER_CLOSE_NOTIFY = 0x7880  # MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY


class State(enum.Enum):
    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"
    CLOSED = "closed"  # close_notify received or sent
    FAILED = "failed"  # the library gave up (alert, bad record, authentication)


class Session:
    def __init__(
        self,
        buffer: tls.TLSWrappedBuffer,
        send: Callable[[bytes], None],
        *,
        mtu: int,
        cookie_info: bytes | None = None,
    ) -> None:
        self.buffer = buffer
        self._send = send
        self.packer = Packer(mtu)
        self.state = State.HANDSHAKING
        self.error: str | None = None
        self.hello_verify_requests = 0
        self._cookie_info = cookie_info
        if cookie_info is not None:
            buffer.setcookieparam(cookie_info)
        # The MTU Mbed TLS fragments handshake messages to: our datagram limit.
        buffer.setmtu(mtu)

    # -- driving -----------------------------------------------------------------------

    def receive(self, datagram: bytes) -> list[bytes]:
        """Feed one datagram; the application data it completed (may be empty)."""
        if self.state in (State.CLOSED, State.FAILED):
            return []
        try:
            self.buffer.receive_from_network(datagram)
        except TLSError as exc:
            self._fail(exc)
            return []
        return self.pump()

    def pump(self) -> list[bytes]:
        """Step the handshake (timers included), flush output, read application data."""
        if self.state is State.HANDSHAKING:
            self._handshake()
        data: list[bytes] = []
        if self.state is State.ESTABLISHED:
            data = self._read()
        self.flush()
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` as one application data record (it must fit the MTU)."""
        if self.state is not State.ESTABLISHED:
            raise ConnectionError(f"DTLS session is {self.state.value}, not established")
        try:
            written = self.buffer.write(data)
        except TLSError as exc:
            self._fail(exc)
            raise ConnectionError(self.error) from exc
        # python-mbedtls reports the bytes of the record it queued (header and tag included).
        if written < len(data):
            raise ConnectionError(f"DTLS wrote {written} of {len(data)} B: message over the MTU")
        self.flush()

    def close(self) -> None:
        """Send close_notify (once)."""
        if self.state in (State.HANDSHAKING, State.ESTABLISHED):
            with contextlib.suppress(TLSError):
                self.buffer.shutdown()
            self.flush()
            self.state = State.CLOSED

    def flush(self) -> None:
        while True:
            out = self.buffer.peek_outgoing(OUTPUT_CHUNK)
            if not out:
                return
            self.buffer.consume_outgoing(len(out))
            for datagram in self.packer.feed(bytes(out)):
                self._send(datagram)

    # -- internals ---------------------------------------------------------------------

    def _handshake(self) -> None:
        for _ in range(64):  # each call advances one state; a flight takes a few
            if self.handshake_over:
                self.state = State.ESTABLISHED
                return
            try:
                self.buffer.do_handshake()
            except tls.WantWriteError:
                self.flush()
            except tls.WantReadError:
                return
            except tls.HelloVerifyRequest:
                # The HelloVerifyRequest is in the output; the next ClientHello must carry
                # the cookie, checked against the same client identity.
                self.hello_verify_requests += 1
                self.flush()
                if self._cookie_info is not None:
                    self.buffer.setcookieparam(self._cookie_info)
                return
            except TLSError as exc:
                self._fail(exc)
                return
        if self.handshake_over:
            self.state = State.ESTABLISHED

    @property
    def handshake_over(self) -> bool:
        state: object = self.buffer._handshake_state
        return state is tls.HandshakeStep.HANDSHAKE_OVER

    def _read(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            try:
                chunk = self.buffer.read(READ_CHUNK)
            except (tls.WantReadError, tls.WantWriteError):
                return out
            except tls.RaggedEOF:
                self.state = State.CLOSED
                return out
            except TLSError as exc:
                if getattr(exc, "err", None) == PEER_CLOSE_NOTIFY or "0x7880" in str(exc):
                    self.state = State.CLOSED
                else:
                    self._fail(exc)
                return out
            if not chunk:  # nothing (more) to read
                return out
            out.append(bytes(chunk))

    def _fail(self, exc: BaseException) -> None:
        self.flush()  # the alert Mbed TLS may have queued
        self.state = State.FAILED
        self.error = str(exc)

    @property
    def peer_certificate(self) -> bytes | None:
        try:
            der = self.buffer.getpeercert(binary_form=True)
        except (TLSError, ValueError):
            return None
        return bytes(der) if der else None

    @property
    def cipher(self) -> str | None:
        try:
            found = self.buffer.cipher()
        except (TLSError, ValueError):
            return None
        if found is None:
            return None
        name = found[0] if isinstance(found, tuple) else found
        return name.decode() if isinstance(name, bytes) else str(name)
