"""The border router's CoAP proxy between a real backend client and a real thing on loopback.

End to end, the proxy forwards OSCORE it cannot read: it counts only opaque bytes, and a
tampering proxy is caught by the thing's AEAD check (refused, counted, the lamp unchanged).
Hop by hop, it terminates DTLS on both sides: it reads every value, and a tampered command
arrives and is acted on while the backend's answer looks right.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiocoap.message import UndecidedRemote

from testbed.contracts.proxy import END_TO_END, HOP_BY_HOP
from testbed.node.backend.proxied import IntegrityFailure
from testbed.node.proxy.inspect import flip_value, tamper_payload
from testbed.node.thing import catalog
from testbed.node.thing.dtls_server import ThingDtlsServer
from tests.unit.node.proxy.rig import rig

E2E, HBH = END_TO_END, HOP_BY_HOP


def test_end_to_end_the_proxy_forwards_oscore_it_cannot_read(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            reply = await r.oscore(aiocoap.GET, "light")
            assert (reply.code, reply.protected) == ("2.05", True)
            assert set(catalog.decode(reply.payload)) == {"on", "level"}
            put = await r.oscore(aiocoap.PUT, "light", {"on": True, "level": 70})
            assert put.code == "2.04" and r.device.read("light") == {"on": True, "level": 70}
            assert r.metric("testbed_proxy_requests_total", mode=E2E, outcome="answered") == 2
            assert r.metric("testbed_proxy_opaque_bytes_total", mode=E2E, direction="request") > 0
            assert r.metric("testbed_proxy_opaque_bytes_total", mode=E2E, direction="response") > 0
            for direction in ("request", "response"):
                assert (
                    r.metric("testbed_proxy_plaintext_bytes_total", mode=E2E, direction=direction)
                    == 0
                )
            assert r.requests.handled_total("/light") == 2
            assert r.proxy.pool is not None and r.proxy.pool.handshakes == 0  # no DTLS used

    asyncio.run(scenario())


def test_hop_by_hop_the_proxy_reads_everything(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            put = await r.dtls(aiocoap.PUT, "light", {"on": True, "level": 30})
            assert put.code == "2.04" and r.device.read("light") == {"on": True, "level": 30}
            reply = await r.dtls(aiocoap.GET, "light")
            assert catalog.decode(reply.payload) == {"on": True, "level": 30}
            sent = len(catalog.encode({"on": True, "level": 30}))
            seen_request = r.metric(
                "testbed_proxy_plaintext_bytes_total", mode=HBH, direction="request"
            )
            assert seen_request == sent  # exactly the command's bytes, in clear
            assert (
                r.metric("testbed_proxy_plaintext_bytes_total", mode=HBH, direction="response")
                >= 2 * sent
            )
            assert r.metric("testbed_proxy_opaque_bytes_total", mode=HBH, direction="request") == 0
            # One session each way, kept for the second request.
            assert r.proxy.pool is not None and r.proxy.pool.handshakes == 1
            assert r.proxy.snapshot()["backend_sessions"] == 1

    asyncio.run(scenario())


def test_a_tampering_proxy_is_detected_end_to_end_not_hop_by_hop(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path, tamper=True) as r:
            before = r.device.read("light")
            reply = await r.oscore(aiocoap.PUT, "light", {"on": True, "level": 80})
            # The thing could not unprotect the altered ciphertext: refused, not acted on.
            assert (reply.protected, reply.code) == (False, "4.00")
            assert r.requests.refused_counts.get("invalid") == 1
            assert r.requests.handled_total() == 0
            assert r.device.read("light") == before
            assert r.metric("testbed_proxy_tampered_total", mode=E2E, direction="request") == 1

            answer = await r.dtls(aiocoap.PUT, "light", {"on": True, "level": 80})
            # DTLS protected each hop; the proxy flipped the command in between. The lamp
            # acted on the flipped value, and the answer was flipped back: the backend sees
            # what it asked for.
            assert r.device.read("light") == {"on": False, "level": 20}
            assert answer.code == "2.04"
            assert catalog.decode(answer.payload) == {"on": True, "level": 80}
            assert r.requests.handled_total("/light") == 1
            assert r.metric("testbed_proxy_tampered_total", mode=HBH, direction="request") == 1
            assert r.metric("testbed_proxy_tampered_total", mode=HBH, direction="response") == 1

    asyncio.run(scenario())


def test_the_tamper_switch_works_live(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            assert (await r.oscore(aiocoap.GET, "light")).protected
            tamper = r.proxy.actions()["proxy-tamper"]
            assert (await tamper({"on": True}))["changed"] is True
            refused = await r.oscore(aiocoap.GET, "light")
            assert not refused.protected and r.requests.refused_counts["invalid"] == 1
            await tamper({"on": False})
            assert (await r.oscore(aiocoap.GET, "light")).code == "2.05"
            show = await r.proxy.actions()["proxy-show"]({})
            assert show["seen"][E2E]["tampered_request"] == 1

    asyncio.run(scenario())


def test_the_proxy_is_no_open_relay(tmp_path: Path) -> None:
    async def scenario() -> None:
        # The thing is not on one of the router's PANs: 4.03 on both legs, nothing forwarded.
        async with rig(tmp_path, pans=("fd00:1::/64",)) as r:
            assert (await r.oscore(aiocoap.GET, "light")).code == "4.03"
            assert (await r.dtls(aiocoap.GET, "light")).code == "4.03"
            assert r.metric("testbed_proxy_requests_total", mode=E2E, outcome="refused") == 1
            assert r.requests.handled_total() == 0 and not r.requests.refused_counts
        # A source that is not one of the building's backends may not use the plain proxy.
        async with rig(tmp_path / "2", allowed_sources=("fd00:2::1",)) as r:
            assert (await r.oscore(aiocoap.GET, "light")).code == "4.03"
            assert r.requests.handled_total() == 0

    asyncio.run(scenario())


def test_a_backend_without_the_proxy_psk_gets_no_session(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            (tmp_path / "backend" / "proxies" / "br.psk").write_bytes(b"x" * 16)
            with pytest.raises((ConnectionError, TimeoutError)):
                await r.dtls(aiocoap.GET, "light")
            assert r.requests.handled_total() == 0

    asyncio.run(scenario())


def test_tampering_changes_values_in_clear_and_bits_otherwise() -> None:
    assert flip_value(True) is False
    assert flip_value({"on": False, "level": 100}) == {"on": True, "level": 0}
    assert flip_value(21.5) == 18.5 and flip_value(50) == 51
    clear = catalog.encode(22.0)
    assert catalog.decode(tamper_payload(clear, readable=True)) == 18.0
    opaque = bytes(range(10))
    assert tamper_payload(opaque, readable=False) == b"\x01" + opaque[1:]


def test_an_altered_oscore_answer_is_refused_by_the_backend(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            inspector = r.proxy.inspector
            original = inspector.message

            def responses_only(mode: str, direction: str, message: aiocoap.Message) -> Any:
                inspector.tamper = direction == "response"
                return original(mode, direction, message)

            inspector.message = responses_only  # type: ignore[method-assign]
            with pytest.raises(IntegrityFailure):
                await r.oscore(aiocoap.PUT, "light", {"on": True, "level": 60})
            # The thing acted (the request was intact); the backend refused the answer.
            assert r.device.read("light") == {"on": True, "level": 60}
            assert r.refusals == {"invalid": 1}
            assert r.metric("testbed_proxy_tampered_total", mode=E2E, direction="response") == 1

    asyncio.run(scenario())


def test_a_port_serves_only_its_scheme(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            assert r.route.coap is not None
            for options in ({"proxy_scheme": "coaps", "uri_host": "[::1]"}, {}):
                request = aiocoap.Message(code=aiocoap.GET, uri_path=("light",), **options)
                request.remote = UndecidedRemote("coap", r.route.coap)
                answer = await r.coap.request(request).response
                assert answer.code.dotted == "5.05", options
            assert r.requests.handled_total() == 0

    asyncio.run(scenario())


def test_the_debug_log_shows_what_the_proxy_saw_and_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            await r.oscore(aiocoap.PUT, "light", {"on": True, "level": 11})
            await r.dtls(aiocoap.PUT, "light", {"on": True, "level": 12})

    with caplog.at_level(logging.DEBUG, logger="proxy-test"):
        asyncio.run(scenario())
    seen = [
        rec.__dict__["fields"]
        for rec in caplog.records
        if rec.name == "proxy-test" and rec.__dict__.get("event") == "proxy.seen"
    ]
    e2e = [f for f in seen if f["mode"] == E2E]
    hbh = [f for f in seen if f["mode"] == HBH]
    assert len(e2e) == 2 and len(hbh) == 2  # request and response each
    # End to end: the outer POST with the OSCORE option and a size, nothing of the command.
    assert e2e[0]["code"] == "0.02" and "oscore_option" in e2e[0] and "value" not in e2e[0]
    assert not any("path" in f for f in e2e)
    # Hop by hop: method, path and value in clear.
    assert (hbh[0]["code"], hbh[0]["path"], hbh[0]["value"]) == (
        "0.03",
        "/light",
        {"on": True, "level": 12},
    )
    keys = [p.read_bytes() for p in tmp_path.rglob("*.psk")]
    text = caplog.text + repr(seen)
    assert keys and not any(k.hex() in text or repr(k) in text for k in keys)


def test_a_thing_that_forgot_the_session_gets_a_new_handshake(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            assert (await r.dtls(aiocoap.GET, "light")).code == "2.05"
            assert r.proxy.pool is not None
            r.proxy.pool.request_timeout_s = 1.0
            # The thing restarts its DTLS server on the same port: the proxy's session is dead
            # and nothing tells it so.
            port = r.thing_dtls.port
            await r.thing_dtls.close()
            restarted = ThingDtlsServer(
                r.thing.site,  # type: ignore[arg-type]
                identity="br",
                material_root=tmp_path / "thing",
                log=r.thing_dtls.log,
                bind=("::1", port),
            )
            await restarted.start()
            r.thing_dtls = restarted
            assert (await r.dtls(aiocoap.GET, "light")).code == "2.05"
            assert r.proxy.pool.handshakes == 2

    asyncio.run(scenario())


def test_an_address_without_a_psk_is_refused_hop_by_hop(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path, pans=("::/0",)) as r:
            r.proxy.config.things.clear()  # the lamp's address: no PSK with it any more
            assert (await r.dtls(aiocoap.GET, "light")).code == "4.03"
            assert r.metric("testbed_proxy_requests_total", mode=HBH, outcome="refused") == 1

    asyncio.run(scenario())
