"""One trust center, 200 things: 150 one after the other, then 50 at once, then /things."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiocoap
import cbor2
from cryptography import x509
from prometheus_client import CollectorRegistry, generate_latest

from testbed.node.bootstrap.profile import Outcome
from testbed.node.enrollment_api import K_THINGS, THINGS
from testbed.node.trust_center.registry import ENROLLED, Registry

from .world import World, port_of, running

SEQUENTIAL = 150
CONCURRENT = 50
BUDGET_S = 60


def test_200_things_enroll_against_one_trust_center(world: World) -> None:
    started = time.monotonic()
    things = [world.make_thing(f"SN-{i:04d}") for i in range(SEQUENTIAL + CONCURRENT)]
    world.write_material()
    minted = time.monotonic() - started
    metrics = CollectorRegistry()

    async def body() -> tuple[list[Any], float, float, aiocoap.Message, dict[str, Any]]:
        async with running(world, metrics=metrics) as role:
            port = port_of(role)
            t0 = time.monotonic()
            results = [await world.bootstrap(t, port) for t in things[:SEQUENTIAL]]
            t1 = time.monotonic()
            results += await asyncio.gather(
                *(world.bootstrap(t, port) for t in things[SEQUENTIAL:])
            )
            t2 = time.monotonic()
            listing = await world.request(world.backend, port, aiocoap.GET, THINGS)
            return results, t1 - t0, t2 - t1, listing, role.state()

    results, sequential_s, concurrent_s, listing, state = asyncio.run(body())
    total = time.monotonic() - started
    print(
        f"\nminted 200 things in {minted:.2f} s; {SEQUENTIAL} sequential enrollments in"
        f" {sequential_s:.2f} s ({1000 * sequential_s / SEQUENTIAL:.1f} ms each),"
        f" {CONCURRENT} concurrent in {concurrent_s:.2f} s; test total {total:.2f} s;"
        f" /things {len(listing.payload)} B"
    )
    failures = [r.detail for r in results if r.outcome is not Outcome.SUCCESS]
    assert not failures, failures[:3]
    serials = {
        x509.load_der_x509_certificate(r.enrollment.ldevid_der).serial_number for r in results
    }
    assert len(serials) == 200

    assert listing.code == aiocoap.CONTENT  # about 25 kB: block-wise under OSCORE
    assert len(cbor2.loads(listing.payload)[K_THINGS]) == 200
    assert state["things"]["enrolled"] == 200 and state["edhoc_sessions"] >= 200
    text = generate_latest(metrics).decode()
    assert 'testbed_tc_registry_things{state="enrolled"} 200.0' in text
    assert "testbed_tc_certificates_issued_total 200.0" in text

    registry = Registry.open(world.state)
    try:
        assert len(registry.things(ENROLLED)) == 200
        boots = registry.bootstraps()
        assert len(boots) == 200 and {b.outcome for b in boots} == {"success"}
        durations = sorted(b.duration_s or 0 for b in boots[:SEQUENTIAL])
        median, p95 = durations[SEQUENTIAL // 2], durations[int(SEQUENTIAL * 0.95)]
        print(
            f"server-side bootstrap (sequential): median {1000 * median:.1f} ms,"
            f" p95 {1000 * p95:.1f} ms;"
            f" bytes in/out median {sorted(b.bytes_in for b in boots)[100]}"
            f"/{sorted(b.bytes_out for b in boots)[100]}"
        )
    finally:
        registry.close()
    assert total < BUDGET_S
