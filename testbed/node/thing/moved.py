"""A thing that has moved to another PAN (the host moved its radio and re-addressed it):
what it does about its trust center and its security contexts.

    moved  {pan, address, reregister=true, timeout=120}

The trust center is the building's directory: the backend finds a thing at the address the
trust center recorded at its last enrolment (GET /things), and the trust center takes an
address only from an authenticated enrolment. So a moved thing re-registers by bootstrapping
again with its profile (``reregister``): one handshake (EDHOC, or a DTLS 1.2 handshake with
certificates or a PSK) plus enrolment, and new OSCORE contexts (generation + 1), which the
backend picks up with the new address. With ``reregister`` false it keeps every context and
the backend keeps reading the old address (nothing answers there): the experiment without the
announcement.

Counted per profile: testbed_thing_moves_total and testbed_thing_move_handshakes_total (the
bootstrap attempts the re-registration needed, retries after loss included).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from testbed.node.errors import ActionError

if TYPE_CHECKING:
    from testbed.node.thing.actions import ThingActions


async def moved(actions: ThingActions, params: dict[str, Any]) -> dict[str, Any]:
    pan, address = params.get("pan"), params.get("address")
    if not isinstance(pan, str) or not isinstance(address, str):
        raise ActionError("moved needs pan and address", '{"pan": "floor2", "address": "fd.."}')
    reregister = params.get("reregister", True)
    if not isinstance(reregister, bool):
        raise ActionError("parameter 'reregister' must be true or false")
    role = actions.role
    role.placement = {"pan": pan, "address": address, "moved_at": time.time()}
    metrics = role.metrics
    if metrics is not None:
        metrics.moves.labels(**metrics.identity).inc()
    if not reregister:
        return {**role.status(), "placement": role.placement, "handshakes": 0, "changed": True}
    answer = await actions.rebootstrap({"timeout": params.get("timeout", 120.0)})
    bootstrapper = role.bootstrapper
    handshakes = 0 if bootstrapper is None else int(bootstrapper.status()["attempts"])
    if metrics is not None and handshakes:
        metrics.move_handshakes.labels(**metrics.identity).inc(handshakes)
    return {**answer, "placement": role.placement, "handshakes": handshakes}
