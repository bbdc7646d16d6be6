"""Statistical accuracy of the medium, with tolerances computed from the sample size.

Every bound is the two-sided 99% normal-approximation interval of the quantity measured:
z = 2.576 standard errors, the standard error computed from the configured (not the measured)
probability and the number of trials. The runs are seeded, so each test is deterministic; the
bounds say that the configured model, not a lucky seed, explains the result. For the
Gilbert-Elliott chain the standard error accounts for the chain's autocorrelation.
"""

from __future__ import annotations

import math

import pytest

from testbed.contracts.radio import ReassemblyLimits
from testbed.node.radio import mac
from testbed.node.radio.links import GilbertElliott, LinkConfig, LinkState, SplitMix64
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import Delivery, MediumConfig, OnAir
from tests.unit.node.radio.packets import filler, ipv6
from tests.unit.node.radio.pan import Pan, ext_of, short_of

Z99 = 2.576


def bound(p: float, n: int) -> float:
    return Z99 * math.sqrt(p * (1 - p) / n)


def broadcast_loss(config: LinkConfig, frames: int, seed: int = 7) -> tuple[float, Medium]:
    m = Medium(MediumConfig(seed=seed, default_link=config, queue_limit=frames + 1))
    m.attach("a", short_of(0))
    m.attach("b", short_of(1))
    f = mac.encode_data(seq=0, pan_id=0x23, src=short_of(0), dst=b"\xff\xff", payload=bytes(30))
    for _ in range(frames):
        m.submit("a", f, 0.0)
    delivered = sum(isinstance(e, Delivery) for e in m.run_all())
    return 1 - delivered / frames, m


@pytest.mark.parametrize("loss", [0.05, 0.1, 0.3, 0.5])
def test_frame_loss_within_99_percent_bound(loss: float) -> None:
    n = 20_000
    measured, m = broadcast_loss(LinkConfig(delivery=1 - loss), n)
    assert abs(measured - loss) <= bound(loss, n), (measured, loss, bound(loss, n))
    link = m.snapshot()["links"]["a->b"]  # type: ignore[index]
    assert link["frames"] == n and link["dropped"]["channel-loss"] == round(measured * n)


def test_full_frames_back_to_back_take_4256_us_each() -> None:
    n = 5_000
    m = Medium(MediumConfig(record_air=True, queue_limit=n))
    m.attach("a", short_of(0))
    m.attach("b", short_of(1))
    f = mac.encode_data(seq=0, pan_id=0x23, src=short_of(0), dst=b"\xff\xff", payload=bytes(116))
    assert len(f) == 127
    for _ in range(n):
        m.submit("a", f, 0.0)
    airs = [e for e in m.run_all() if isinstance(e, OnAir)]
    assert max(abs((a.end - a.start) - 4.256e-3) for a in airs) < 1e-9
    assert airs[-1].end == pytest.approx(n * 4.256e-3, rel=1e-9)  # channel never idle
    assert m.snapshot()["channel"]["busy_s"] == pytest.approx(n * 4.256e-3)  # type: ignore[index]


def test_gilbert_elliott_long_run_loss_matches_stationary_value() -> None:
    ge = GilbertElliott(p=0.05, r=0.3, loss_good=0.01, loss_bad=0.9)
    n = 50_000
    measured, _ = broadcast_loss(LinkConfig(burst=ge), n, seed=11)
    mean = ge.stationary_loss  # 0.1371
    # Asymptotic variance of the mean of a loss indicator driven by a two-state chain:
    # Var(L) + 2 sum_k Cov(L_0, L_k), Cov = pi_G pi_B (l_B - l_G)^2 lambda^k, lambda = 1-p-r.
    lam = 1 - ge.p - ge.r
    pi_b = ge.stationary_bad
    var = mean * (1 - mean) + 2 * (1 - pi_b) * pi_b * (ge.loss_bad - ge.loss_good) ** 2 * (
        lam / (1 - lam)
    )
    tol = Z99 * math.sqrt(var / n)
    assert abs(measured - mean) <= tol, (measured, mean, tol)
    # Bursty: losses cluster, so the tolerance is wider than a Bernoulli one of equal mean.
    assert tol > bound(mean, n)


def burst_lengths(config: LinkConfig, n: int) -> float:
    m = Medium(MediumConfig(seed=5, default_link=config, queue_limit=n + 1, record_air=True))
    m.attach("a", short_of(0))
    m.attach("b", short_of(1))
    f = mac.encode_data(seq=0, pan_id=0x23, src=short_of(0), dst=b"\xff\xff", payload=b"")
    for _ in range(n):
        m.submit("a", f, 0.0)
    events = m.run_all()
    got = {e.time for e in events if isinstance(e, Delivery)}
    lost = [a.end not in got for a in events if isinstance(a, OnAir)]
    runs = [len(r) for r in "".join("x" if x else "." for x in lost).split(".") if r]
    return sum(runs) / len(runs)


def test_gilbert_elliott_losses_come_in_bursts() -> None:
    ge = GilbertElliott(p=0.02, r=0.25, loss_good=0.0, loss_bad=1.0)
    bursty = burst_lengths(LinkConfig(burst=ge), 20_000)
    independent = burst_lengths(LinkConfig(delivery=1 - ge.stationary_loss), 20_000)
    assert bursty == pytest.approx(1 / ge.r, rel=0.15)  # mean sojourn in Bad
    assert independent < 1.2


def k_fragment_loss(size: int, p_data: float, p_ack: float, packets: int) -> tuple[int, float, Pan]:
    pan = Pan(n=2, seed=3, reassembly=ReassemblyLimits(timeout=0.5))
    pan.medium.set_link("n0", "n1", LinkConfig(delivery=1 - p_data))
    pan.medium.set_link("n1", "n0", LinkConfig(delivery=1 - p_ack))
    pkt = ipv6(bytes.fromhex("fe80000000000000") + bytes(8), bytes(16), 59, filler(size - 40))
    k = 0
    for i in range(packets):
        # One packet per second: the previous one is done (at most 4 x 12 attempts) and an
        # incomplete one has timed out of the receiver's buffers.
        k = pan.send("n0", "n1", pkt, float(i))
    pan.run()
    return k, 1 - len(pan.received) / packets, pan


@pytest.mark.parametrize("size", [100, 300, 600, 1200])
@pytest.mark.parametrize(("p_data", "p_ack"), [(0.4, 0.0), (0.3, 0.2)])
def test_k_fragment_packet_loss_with_three_retries(size: int, p_data: float, p_ack: float) -> None:
    packets = 2_000
    k, measured, pan = k_fragment_loss(size, p_data, p_ack, packets)
    assert k == {100: 1, 300: 3, 600: 6, 1200: 12}[size]
    # A fragment is lost only if all 4 of its data frames are (ACK loss causes duplicates and
    # retries, never a loss at the receiver): packet loss 1 - (1 - p^4)^k.
    expected = 1 - (1 - p_data**4) ** k
    assert abs(measured - expected) <= bound(expected, packets), (k, measured, expected)
    # The sender's view: an attempt fails if the data or its ACK is lost; it gives a frame up
    # after 4 failures.
    frames = packets * k
    q = 1 - (1 - p_data) * (1 - p_ack)
    exhausted = pan.medium.snapshot()["nodes"]["n0"]["dropped"].get("retries-exhausted", 0)  # type: ignore[index]
    assert abs(exhausted / frames - q**4) <= bound(q**4, frames)
    if p_ack == 0:
        assert exhausted == sum(1 for s in pan.statuses() if not s.ok)


def test_same_seed_same_pattern_other_seed_other_pattern() -> None:
    def pattern(seed: int) -> list[tuple[float, str]]:
        pan = Pan(n=3, seed=seed, default=LinkConfig(delivery=0.7))
        for i in range(50):
            pan.send(
                "n0", "n1" if i % 2 else None, ipv6(bytes(16), bytes(16), 59, filler(400)), i * 0.2
            )
        pan.run()
        return [(e.time, e.dst) for e in pan.events if isinstance(e, Delivery)]

    assert pattern(1) == pattern(1)
    assert pattern(1) != pattern(2)


def test_link_pattern_does_not_depend_on_other_links() -> None:
    def losses(extra_traffic: bool) -> list[bool]:
        m = Medium(MediumConfig(seed=4, default_link=LinkConfig(delivery=0.6), queue_limit=1000))
        for i in range(3):
            m.attach(f"n{i}", short_of(i))
        f = mac.encode_data(
            seq=0, pan_id=0x23, src=short_of(0), dst=short_of(1), payload=b"", ack_request=False
        )
        g = mac.encode_data(seq=0, pan_id=0x23, src=short_of(2), dst=b"\xff\xff", payload=b"")
        for i in range(300):
            m.submit("n0", f, i * 0.01)
            if extra_traffic:
                m.submit("n2", g, i * 0.01 + 0.005)
        events = m.run_all()
        # n0's frame i goes on air at i * 10 ms and lasts 544 us: its delivery time names it.
        got = {int(e.time / 0.01) for e in events if isinstance(e, Delivery) and e.src == "n0"}
        return [i in got for i in range(300)]

    alone, crowded = losses(False), losses(True)
    assert 100 < sum(alone) < 260
    assert alone == crowded


def test_common_random_numbers_more_loss_only_adds_losses() -> None:
    def delivered(loss: float) -> set[float]:
        m = Medium(
            MediumConfig(seed=9, default_link=LinkConfig(delivery=1 - loss), queue_limit=2000)
        )
        m.attach("a", short_of(0))
        m.attach("b", ext_of(1))
        f = mac.encode_data(seq=0, pan_id=0x23, src=short_of(0), dst=b"\xff\xff", payload=b"")
        for i in range(1000):
            m.submit("a", f, i * 0.01)
        return {e.time for e in m.run_all() if isinstance(e, Delivery)}

    assert delivered(0.3) <= delivered(0.1)


def test_link_streams_are_splitmix64() -> None:
    """The per-link generator against SplitMix64's reference outputs for seed 1234567
    (Rosetta Code, "Pseudo-random numbers/Splitmix64"), and its floats in [0, 1)."""
    rng = SplitMix64(1234567)
    assert [rng.next_u64() for _ in range(5)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    again = SplitMix64(1234567)
    assert again.random() == (6457827717110365317 >> 11) / 2**53
    assert SplitMix64(-1).state == 2**64 - 1  # seeds are taken modulo 2**64


def test_a_link_draws_its_stream_in_order() -> None:
    """LinkState.transmit writes the draw out for speed: frame k arrives exactly when the k-th
    value of the link's SplitMix64 stream is below the delivery probability, burst state or
    not (a Gilbert-Elliott link draws three values per frame)."""
    plain = LinkState(LinkConfig(delivery=0.6), 99)
    reference = SplitMix64(99)
    assert [plain.transmit() for _ in range(500)] == [reference.random() < 0.6 for _ in range(500)]
    assert plain.rng.state == reference.state
    burst = GilbertElliott(p=0.2, r=0.3, loss_good=0.05, loss_bad=0.7)
    bursty = LinkState(LinkConfig(delivery=0.9, burst=burst), 7)
    ref, bad, expected = SplitMix64(7), False, []
    for _ in range(500):
        ok = ref.random() < 0.9
        if ref.random() < (burst.loss_bad if bad else burst.loss_good):
            ok = False
        move = ref.random()
        bad = move >= burst.r if bad else move < burst.p
        expected.append(ok)
    assert [bursty.transmit() for _ in range(500)] == expected
