"""The kernel implementation: ``tc qdisc ... netem`` on both directions of an interface.

    egress:   tc qdisc  DEV root netem ...
    ingress:  tc qdisc  DEV ingress; u32 "match everything" -> mirred redirect to IFB;
              tc qdisc  IFB root netem ...     (the same parameters: a link impairs both ways)

u32 rather than matchall because matchall is missing from some kernels (ours among them).
Every netem parameter is always written out, zeros included, because ``tc qdisc change`` keeps
the old value of reorder, corrupt and rate when they are absent: a live change from
"corrupt 1%" to "delay 10ms" must not leave the corruption behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from testbed.contracts.impairment import Impairment
from testbed.node.shaping.runner import Result, Runner

IMPLEMENTATION = "netem"
INGRESS = "ffff:"
PROBE_DEVICE = "tbnetemprobe"


def percent(p: float) -> str:
    """0.2 -> "20%", 0.001 -> "0.1%" (fixed point: tc reads it with strtod either way)."""
    text = f"{p * 100:.6f}".rstrip("0").rstrip(".")
    return f"{text or '0'}%"


def usec(seconds: float) -> str:
    return f"{round(seconds * 1e6)}us"


def netem_args(imp: Impairment) -> list[str]:
    """``netem ...`` with every parameter explicit (see the module docstring)."""
    args = ["netem", "limit", str(imp.limit), "delay", usec(imp.delay)]
    if imp.jitter:
        args.append(usec(imp.jitter))
    ge = imp.gilbert_elliott
    if ge is not None:
        # tc's order is p, r, 1-h (loss in the bad state), 1-k (loss in the good state).
        args += ["loss", "gemodel", *map(percent, (ge.p, ge.r, ge.loss_bad, ge.loss_good))]
    else:
        args += ["loss", "random", percent(imp.loss)]
    args += ["duplicate", percent(imp.duplicate)]
    args += ["reorder", percent(imp.reorder)]
    args += ["corrupt", percent(imp.corrupt)]
    args += ["rate", f"{imp.rate or 0}bit"]  # 0: no rate limit
    return args


def ifb_name(link: str) -> str:
    return f"ifb-{link}"[:15]  # IFNAMSIZ


def setup_commands(dev: str, ifb: str, imp: Impairment) -> list[list[str]]:
    netem = netem_args(imp)
    return [
        ["ip", "link", "add", ifb, "type", "ifb"],
        ["ip", "link", "set", ifb, "up"],
        ["tc", "qdisc", "add", "dev", dev, "root", *netem],
        ["tc", "qdisc", "add", "dev", dev, "handle", INGRESS, "ingress"],
        ["tc", "filter", "add", "dev", dev, "parent", INGRESS, "protocol", "all", "prio", "1",
         "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb],
        ["tc", "qdisc", "add", "dev", ifb, "root", *netem],
    ]  # fmt: skip


def change_commands(dev: str, ifb: str, imp: Impairment) -> list[list[str]]:
    netem = netem_args(imp)
    return [
        ["tc", "qdisc", "change", "dev", dev, "root", *netem],
        ["tc", "qdisc", "change", "dev", ifb, "root", *netem],
    ]


def teardown_commands(dev: str, ifb: str) -> list[list[str]]:
    """Idempotent: each may fail because there is nothing to remove."""
    return [
        ["tc", "qdisc", "del", "dev", dev, "root"],
        ["tc", "qdisc", "del", "dev", dev, "handle", INGRESS, "ingress"],
        ["ip", "link", "del", ifb],
    ]


def probe_commands() -> tuple[list[list[str]], list[list[str]]]:
    """What the kernel must allow for this implementation, tried on a scratch IFB device
    (our kernel has no ``dummy``): netem, the ingress qdisc and the u32 mirred redirect."""
    dev = PROBE_DEVICE
    try_ = [
        ["ip", "link", "add", dev, "type", "ifb"],
        ["tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms"],
        ["tc", "qdisc", "add", "dev", dev, "handle", INGRESS, "ingress"],
        ["tc", "filter", "add", "dev", dev, "parent", INGRESS, "protocol", "all", "prio", "1",
         "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", dev],
    ]  # fmt: skip
    return try_, [["ip", "link", "del", dev]]


async def probe(runner: Runner) -> tuple[bool, str]:
    """(available, reason). Leaves nothing behind."""
    try_, cleanup = probe_commands()
    verdict: tuple[bool, str] = (True, "tc netem works in this network namespace")
    for cmd in try_:
        result = await runner(cmd)
        if not result.ok:
            verdict = (False, f"`{' '.join(cmd)}` failed: {result.stderr.strip() or result.code}")
            break
    for cmd in cleanup:
        await runner(cmd)
    return verdict


@dataclass
class QdiscCounters:
    packets: int = 0
    drops: int = 0


def parse_qdisc_stats(text: str) -> QdiscCounters:
    """`tc -s -j qdisc show dev DEV`: the netem qdisc's sent packets and drops."""
    out = QdiscCounters()
    try:
        entries = json.loads(text or "[]")
    except ValueError:
        return out
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("kind") == "netem":
            out.packets += int(entry.get("packets", 0))
            out.drops += int(entry.get("drops", 0))
    return out


class KernelLink:
    """One link shaped by netem; ``apply`` is live (``change``) once set up."""

    implementation = IMPLEMENTATION

    def __init__(self, link: str, dev: str, runner: Runner) -> None:
        self.link = link
        self.dev = dev
        self.ifb = ifb_name(link)
        self.runner = runner
        self.active = False

    async def _all(self, commands: Sequence[list[str]]) -> None:
        for cmd in commands:
            result = await self.runner(cmd)
            if not result.ok:
                raise ShapingCommandError(cmd, result)

    async def apply(self, imp: Impairment) -> None:
        if imp.is_none:
            await self.clear()
        elif self.active:
            await self._all(change_commands(self.dev, self.ifb, imp))
        else:
            await self.clear()  # leftovers of an earlier process
            await self._all(setup_commands(self.dev, self.ifb, imp))
            self.active = True

    async def clear(self) -> None:
        for cmd in teardown_commands(self.dev, self.ifb):
            await self.runner(cmd)
        self.active = False

    async def counters(self) -> QdiscCounters:
        total = QdiscCounters()
        if not self.active:
            return total
        for dev in (self.dev, self.ifb):
            result = await self.runner(["tc", "-s", "-j", "qdisc", "show", "dev", dev])
            one = parse_qdisc_stats(result.stdout) if result.ok else QdiscCounters()
            total.packets += one.packets
            total.drops += one.drops
        return total

    async def close(self) -> None:
        await self.clear()


class ShapingCommandError(Exception):
    def __init__(self, cmd: Sequence[str], result: Result) -> None:
        super().__init__(f"`{' '.join(cmd)}` failed ({result.code}): {result.stderr.strip()}")
        self.cmd = list(cmd)
        self.result = result
