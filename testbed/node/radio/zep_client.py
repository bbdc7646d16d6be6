"""A node's radio: its link to the medium's hub (testbed.node.radio.frontend.MediumHub), ZEP v2
over UDP on the carrier network.

``ZepClient`` registers with a HELLO (RIOT's ``socket_zep_hello``), again every
``HELLO_INTERVAL`` so that a restarted hub learns it back without waiting for traffic, sends each
frame as one ZEP data datagram and hands received frames to its port. It accepts datagrams only
from the hub's address: anyone else on the carrier network is not the medium.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import zep
from testbed.node.radio.admission import FOREIGN_SENDER, WRONG_CHANNEL, Endpoint
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.port import StationPort

HELLO_INTERVAL = 5.0


def _host(endpoint: Endpoint) -> str:
    return str(endpoint[0]).split("%")[0]


class ZepClient(asyncio.DatagramProtocol):
    """A station's radio: frames to the hub as ZEP, ZEP from the hub to the port."""

    def __init__(self, config: RadioPanConfig, port: StationPort | None = None) -> None:
        self.config = config
        self.port = port
        self.hub: Endpoint = (config.medium, config.port)
        self.transport: asyncio.DatagramTransport | None = None
        self._seq = 0
        self._hello: asyncio.TimerHandle | None = None
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.dropped: Counter[str] = Counter()  # datagrams, by reason

    async def open(self, bind: Endpoint | None = None) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=bind or ("::", self.config.local_port or self.config.port)
        )
        self.transport = transport
        self._send_hello()

    def close(self) -> None:
        if self._hello is not None:
            self._hello.cancel()
            self._hello = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _send_hello(self) -> None:
        if self.transport is None:
            return
        self.transport.sendto(zep.encode_hello(self.config.ext_addr), self.hub)
        self._hello = asyncio.get_running_loop().call_later(HELLO_INTERVAL, self._send_hello)

    def transmit(self, frame: bytes) -> None:
        if self.transport is None:
            self.dropped["closed"] += 1
            return
        datagram = zep.encode_data(
            frame,
            channel=self.config.channel,
            device_id=self.config.short,
            seq=self._seq,
            timestamp=zep.ntp_timestamp(time.time()),
        )
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self.transport.sendto(datagram, self.hub)
        self.datagrams_sent += 1

    def datagram_received(self, data: bytes, addr: Endpoint) -> None:
        if _host(addr) != _host(self.hub) or addr[1] != self.hub[1]:
            self.dropped[FOREIGN_SENDER] += 1
            return
        self.datagrams_received += 1
        try:
            msg = zep.decode(data)
        except MalformedError as exc:
            self.dropped[f"garbled-{exc.reason}"] += 1
            return
        if not isinstance(msg, zep.ZepData):
            return  # HELLO/ACK from the hub: nothing we act on
        if msg.channel != self.config.channel:
            self.dropped[WRONG_CHANNEL] += 1
            return
        if self.port is not None:
            self.port.receive_frame(msg.frame, asyncio.get_running_loop().time())

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (hub not there yet) surface here on Linux; the next HELLO retries.
        self.dropped["socket-error"] += 1
