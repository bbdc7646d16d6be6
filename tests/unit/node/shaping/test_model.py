"""The user-space shaper's model against the settings, statistically (seeded, so stable).

Bounds are 99% intervals computed from the sample size: a proportion p over n trials lies
within p +- 2.576 * sqrt(p (1 - p) / n); a mean of n uniform delays within
d +- 2.576 * j / sqrt(3 n).
"""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from testbed.contracts.impairment import GilbertElliott, Impairment
from testbed.node.shaping.model import (
    CORRUPTED,
    DROPPED,
    DUPLICATED,
    ETHERNET_HEADER,
    REORDERED,
    SHAPED,
    LinkModel,
    flip_bit,
)

N = 20_000
Z99 = 2.576


def bound(p: float, n: int) -> float:
    return Z99 * math.sqrt(p * (1 - p) / n)


def run(imp: Impairment, n: int = N, size: int = 100, gap: float = 0.001, seed: int = 7):
    model = LinkModel(imp, seed)
    return model, [model.admit(size, i * gap) for i in range(n)]


@pytest.mark.parametrize("p", [0.01, 0.2, 0.5])
def test_random_loss_within_the_99_percent_bound(p: float) -> None:
    model, fates = run(Impairment(loss=p))
    lost = sum(f.drop == "loss" for f in fates) / N
    assert abs(lost - p) <= bound(p, N)
    assert model.counts[DROPPED] == sum(f.drop is not None for f in fates)
    assert model.counts[SHAPED] == N


def test_gilbert_elliott_loss_is_bursty_and_has_the_stationary_rate() -> None:
    ge = GilbertElliott(p=0.02, r=0.2, loss_good=0.0, loss_bad=0.9)
    n = 50_000
    _, fates = run(Impairment(gilbert_elliott=ge), n=n)
    lost = [f.drop is not None for f in fates]
    expected = ge.expected_loss
    # Bursts make draws dependent: widen the binomial bound by the burst length factor
    # (1 + rho) / (1 - rho) with rho = 1 - p - r, the chain's autocorrelation.
    rho = 1 - ge.p - ge.r
    assert abs(sum(lost) / n - expected) <= bound(expected, n) * math.sqrt((1 + rho) / (1 - rho))
    # Losses cluster: P(loss | previous loss) far above the mean.
    after_loss = [b for a, b in itertools.pairwise(lost) if a]
    assert sum(after_loss) / len(after_loss) > 3 * expected


def test_delay_mean_and_jitter_spread() -> None:
    d, j = 0.05, 0.01
    _, fates = run(Impairment(delay=d, jitter=j))
    delays = [f.at - i * 0.001 for i, f in enumerate(fates)]
    assert abs(statistics.fmean(delays) - d) <= Z99 * j / math.sqrt(3 * N)
    assert min(delays) >= d - j and max(delays) <= d + j
    # Uniform on [d - j, d + j]: standard deviation j / sqrt(3), within 3%.
    assert statistics.pstdev(delays) == pytest.approx(j / math.sqrt(3), rel=0.03)


def test_fixed_delay_without_jitter_is_exact() -> None:
    _, fates = run(Impairment(delay=0.03), n=100)
    assert all(f.at == pytest.approx(i * 0.001 + 0.03) for i, f in enumerate(fates))


def test_duplicates_have_their_own_fate() -> None:
    p = 0.05
    model, fates = run(Impairment(duplicate=p, delay=0.01, jitter=0.005))
    copies = [f.copy for f in fates if f.copy is not None]
    assert abs(len(copies) / N - p) <= bound(p, N)
    assert model.counts[DUPLICATED] == len(copies)
    assert all(c.copy is None for c in copies)  # a copy is not duplicated again
    assert sum(c.at != f.at for f, c in ((f, f.copy) for f in fates if f.copy)) > len(copies) / 2


def test_duplicate_and_loss_combine_as_in_netem() -> None:
    # count = 1 + dup - loss: with both certain, exactly one packet survives, and no copy.
    _, fates = run(Impairment(duplicate=1.0, loss=1.0), n=10)
    assert all(f.drop is None and f.copy is None for f in fates)


def test_reorder_sends_a_share_at_once() -> None:
    p = 0.25
    model, fates = run(Impairment(delay=0.02, reorder=p))
    immediate = sum(f.at == i * 0.001 for i, f in enumerate(fates)) / N
    assert abs(immediate - p) <= bound(p, N)
    assert model.counts[REORDERED] == round(immediate * N)


def test_rate_serialises_packets() -> None:
    rate, size = 250_000, 200
    airtime = (size + ETHERNET_HEADER) * 8 / rate  # 6.848 ms per packet
    # Offered every 1 ms, far above the rate: departures are spaced exactly by the airtime.
    _, fates = run(Impairment(rate=rate, limit=10_000), n=500, size=size)
    gaps = [b.at - a.at for a, b in itertools.pairwise(fates)]
    assert all(g == pytest.approx(airtime) for g in gaps)
    # Throughput over the run: the configured rate.
    bits = (len(fates) - 1) * (size + ETHERNET_HEADER) * 8
    assert bits / (fates[-1].at - fates[0].at) == pytest.approx(rate)


def test_the_limit_drops_what_does_not_fit() -> None:
    model, fates = run(Impairment(delay=1.0, limit=100), n=300, gap=0.001)
    assert sum(f.drop == "limit" for f in fates) == 200
    assert model.held == 100


def test_corrupt_flips_one_payload_bit() -> None:
    p = 0.1
    model, fates = run(Impairment(corrupt=p))
    flips = [f.flip for f in fates if f.flip is not None]
    assert abs(len(flips) / N - p) <= bound(p, N)
    assert model.counts[CORRUPTED] == len(flips)
    assert all(40 <= offset < 100 and 0 <= bit < 8 for offset, bit in flips)
    packet = bytes(range(100))
    changed = flip_bit(packet, flips[0])
    diff = [a ^ b for a, b in zip(packet, changed, strict=True)]
    assert sum(bin(x).count("1") for x in diff) == 1 and diff[:40] == [0] * 40


def test_same_seed_same_fates_other_seed_other_fates() -> None:
    imp = Impairment(loss=0.3, delay=0.01, jitter=0.005, duplicate=0.1)
    _, a = run(imp, n=2000, seed=3)
    _, b = run(imp, n=2000, seed=3)
    _, c = run(imp, n=2000, seed=4)
    assert a == b
    assert a != c


def test_live_change_applies_to_new_packets() -> None:
    model = LinkModel(Impairment(loss=1.0), 1)
    assert model.admit(100, 0.0).drop == "loss"
    model.configure(Impairment(delay=0.02))
    assert model.admit(100, 1.0).at == pytest.approx(1.02)
