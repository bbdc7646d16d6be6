"""Attacks by name: started as tasks, stopped on request or when their duration is over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from testbed.node import declared_metrics as declared
from testbed.node.attacker.base import Attack, Counters
from testbed.node.attacker.coap_floods import CoapFlood, EdhocFlood
from testbed.node.attacker.lowpan_flood import FragmentFlood
from testbed.node.attacker.replay import FrameReplay
from testbed.node.errors import ActionError
from testbed.node.logs import EventLog

ATTACKS: Mapping[str, type[Attack]] = {
    a.name: a for a in (EdhocFlood, CoapFlood, FragmentFlood, FrameReplay)
}


class AttackerService:
    def __init__(
        self, attributes: Mapping[str, str], registry: CollectorRegistry | None, log: EventLog
    ) -> None:
        self.attributes = dict(attributes)
        self.log = log
        self.packets = declared.counter("testbed_attack_packets", registry) if registry else None
        self.running_gauge = (
            declared.gauge("testbed_attack_running", registry) if registry else None
        )
        self.attacks: dict[str, tuple[Attack, asyncio.Task[None]]] = {}
        self.finished: dict[str, dict[str, Any]] = {}

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params.get("attack"))
        if name not in ATTACKS:
            raise ActionError(f"unknown attack {name!r}", "attacks: " + ", ".join(sorted(ATTACKS)))
        if name in self.attacks and not self.attacks[name][1].done():
            raise ActionError(f"attack {name} is running already", "stop it first")
        options = {k: v for k, v in params.items() if k != "attack"}
        attack = ATTACKS[name](options, self.attributes, Counters(name, self.packets))
        await attack.setup()
        task = asyncio.get_running_loop().create_task(self._run(attack), name=f"attack-{name}")
        self.attacks[name] = (attack, task)
        if self.running_gauge is not None:
            self.running_gauge.labels(name).set(1)
        self.log.info("attack.started", attack=name, params=options)
        return {"attack": name, "params": options, "running": True, "changed": True}

    async def _run(self, attack: Attack) -> None:
        try:
            await attack.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an attack that breaks stops; the node goes on
            self.log.error("attack.failed", attack=attack.name, error=str(exc))
        finally:
            if self.running_gauge is not None:
                self.running_gauge.labels(attack.name).set(0)

    async def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params.get("attack"))
        if name not in self.attacks:
            raise ActionError(f"attack {name!r} was not started", "attack-status lists them")
        attack, task = self.attacks.pop(name)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        result = attack.describe()
        self.finished[str(name)] = result
        self.log.info("attack.stopped", attack=name, counters=result["counters"])
        return {**result, "running": False, "changed": True}

    def status(self) -> dict[str, Any]:
        return {
            "available": sorted(ATTACKS),
            "running": {
                n: {**a.describe(), "done": t.done()} for n, (a, t) in self.attacks.items()
            },
            "finished": self.finished,
        }

    async def close(self) -> None:
        for name in list(self.attacks):
            await self.stop({"attack": name})
