"""The kernel implementation's tc commands: netem syntax for every parameter, the ingress IFB
path, live changes, the probe; checked against tc's own parser where we can run it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import pytest

from testbed.contracts.impairment import GilbertElliott, Impairment
from testbed.node.shaping import netem
from testbed.node.shaping.runner import Recorder, Result

Z = "duplicate 0% reorder 0% corrupt 0% rate 0bit"


@pytest.mark.parametrize(
    ("imp", "expected"),
    [
        (Impairment(), f"limit 1000 delay 0us loss random 0% {Z}"),
        (Impairment(delay=0.05), f"limit 1000 delay 50000us loss random 0% {Z}"),
        (
            Impairment(delay=0.03, jitter=0.005),
            f"limit 1000 delay 30000us 5000us loss random 0% {Z}",
        ),
        (Impairment(loss=0.2), f"limit 1000 delay 0us loss random 20% {Z}"),
        # tc's order: p, r, 1-h (loss in the bad state), 1-k (loss in the good state)
        (
            Impairment(gilbert_elliott=GilbertElliott(0.01, 0.3, 0.02, 0.8)),
            f"limit 1000 delay 0us loss gemodel 1% 30% 80% 2% {Z}",
        ),
        (
            Impairment(duplicate=0.01),
            "limit 1000 delay 0us loss random 0% duplicate 1% reorder 0% corrupt 0% rate 0bit",
        ),
        (
            Impairment(delay=0.01, reorder=0.05),
            "limit 1000 delay 10000us loss random 0% duplicate 0% reorder 5% corrupt 0% rate 0bit",
        ),
        (
            Impairment(corrupt=0.001),
            "limit 1000 delay 0us loss random 0% duplicate 0% reorder 0% corrupt 0.1% rate 0bit",
        ),
        (
            Impairment(rate=250_000, limit=50),
            "limit 50 delay 0us loss random 0% duplicate 0% reorder 0% corrupt 0% rate 250000bit",
        ),
    ],
)
def test_netem_arguments(imp: Impairment, expected: str) -> None:
    assert netem.netem_args(imp) == ["netem", *expected.split()]


@pytest.mark.parametrize(
    ("p", "text"), [(0.2, "20%"), (0.001, "0.1%"), (1.0, "100%"), (0.0, "0%"), (1e-7, "0.00001%")]
)
def test_percent_is_fixed_point(p: float, text: str) -> None:
    assert netem.percent(p) == text


def test_setup_shapes_both_directions_through_an_ifb() -> None:
    commands = netem.setup_commands("eth1", "ifb-backbone", Impairment(delay=0.05))
    args = netem.netem_args(Impairment(delay=0.05))
    assert commands == [
        ["ip", "link", "add", "ifb-backbone", "type", "ifb"],
        ["ip", "link", "set", "ifb-backbone", "up"],
        ["tc", "qdisc", "add", "dev", "eth1", "root", *args],
        ["tc", "qdisc", "add", "dev", "eth1", "handle", "ffff:", "ingress"],
        ["tc", "filter", "add", "dev", "eth1", "parent", "ffff:", "protocol", "all", "prio", "1",
         "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
         "ifb-backbone"],
        ["tc", "qdisc", "add", "dev", "ifb-backbone", "root", *args],
    ]  # fmt: skip


def test_kernel_link_sets_up_once_changes_live_and_clears() -> None:
    rec = Recorder()
    link = netem.KernelLink("internet", "eth2", rec)

    async def scenario() -> None:
        await link.apply(Impairment(delay=0.05))
        assert link.active
        await link.apply(Impairment(loss=0.1))
        await link.apply(Impairment())
        assert not link.active

    asyncio.run(scenario())
    verbs = [" ".join(cmd[:3]) for cmd in rec.lines]
    teardown = ["tc qdisc del", "tc qdisc del", "ip link del"]
    setup = ["ip link add", "ip link set", "tc qdisc add", "tc qdisc add", "tc filter add",
             "tc qdisc add"]  # fmt: skip
    assert verbs == [*teardown, *setup, "tc qdisc change", "tc qdisc change", *teardown]
    assert rec.lines[-4] == [
        "tc", "qdisc", "change", "dev", "ifb-internet", "root",
        *netem.netem_args(Impairment(loss=0.1)),
    ]  # fmt: skip


def test_a_failing_command_is_reported() -> None:
    rec = Recorder(answer=lambda cmd: Result(2, "", "Error: Specified qdisc kind is unknown."))
    link = netem.KernelLink("backbone", "eth1", rec)
    with pytest.raises(netem.ShapingCommandError, match="qdisc kind is unknown"):
        asyncio.run(link.apply(Impairment(delay=0.01)))


def test_probe_cleans_up_and_reports_the_failing_step() -> None:
    def answer(cmd: list[str]) -> Result:
        unknown = Result(2, "", "Error: Specified qdisc kind is unknown.")
        return unknown if "netem" in cmd else Result(0, "", "")

    rec = Recorder(answer=answer)
    ok, why = asyncio.run(netem.probe(rec))
    assert not ok and "qdisc kind is unknown" in why
    assert rec.lines[-1] == ["ip", "link", "del", netem.PROBE_DEVICE]
    ok, _ = asyncio.run(netem.probe(Recorder()))
    assert ok


def test_qdisc_statistics_are_parsed() -> None:
    text = json.dumps(
        [
            {"kind": "netem", "handle": "8001:", "packets": 120, "drops": 7, "bytes": 1},
            {"kind": "ingress", "handle": "ffff:", "packets": 500, "drops": 0},
        ]
    )
    stats = netem.parse_qdisc_stats(text)
    assert (stats.packets, stats.drops) == (120, 7)
    assert netem.parse_qdisc_stats("garbage").packets == 0


TC = shutil.which("tc")
UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(
    TC is None or UNSHARE is None or os.geteuid() != 0, reason="needs root, tc and unshare"
)
@pytest.mark.parametrize(
    "imp",
    [
        Impairment(),
        Impairment(delay=0.03, jitter=0.005, loss=0.2, duplicate=0.01, reorder=0.05),
        Impairment(gilbert_elliott=GilbertElliott(0.01, 0.3, 0.0, 1.0), corrupt=0.001),
        Impairment(rate=250_000, limit=10),
    ],
)
def test_tc_parses_the_arguments(imp: Impairment) -> None:
    """tc parses before it asks the kernel: a kernel without netem answers "qdisc kind is
    unknown" (exit 2) only for a command line tc accepted; a syntax error is exit 1."""
    proc = subprocess.run(
        [UNSHARE, "--net", TC, "qdisc", "add", "dev", "lo", "root", *netem.netem_args(imp)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0 or "qdisc kind is unknown" in proc.stderr, proc.stderr
