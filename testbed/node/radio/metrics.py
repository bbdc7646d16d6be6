"""Prometheus metrics of the radio, in the node's registry.

    testbed_radio_frames_sent_total{pan,node}            frames put on the air (attempts: the
                                                          router's medium counts MAC retries;
                                                          a thing counts what its station sent)
    testbed_radio_frames_received_total{pan,node}        data frames received
    testbed_radio_frames_dropped_total{pan,node,cause}   channel-loss, retries-exhausted,
                                                          queue-full, garbled, reassembly-timeout,
                                                          buffer-full, duplicate, not-for-us, ...
    testbed_radio_retries_total{pan,node}                MAC retransmissions (router only)
    testbed_radio_fragments_per_packet{pan,node}         histogram: frames per IPv6 packet sent
    testbed_radio_airtime_seconds_total{pan,node}        channel time of the node's frames
    testbed_radio_queue_length{pan,node}                 frames waiting for the channel (router)
    testbed_radio_packets_filtered_total{pan,node,kind}  TUN packets not sent (mld, rs, ...)
    testbed_radio_channel_busy_seconds_total{pan}        (router)
    testbed_radio_link_loss_ratio{pan}                   configured default frame loss (router)
    testbed_radio_datagrams_refused_total{pan,cause}     ZEP the medium refused (router):
                                                          station-hijack, foreign-sender,
                                                          too-many-nodes, garbled-*, ...
    testbed_radio_nd_registrations{pan}                  addresses registered by 6LoWPAN-ND now
    testbed_radio_nd_registration_requests_total{pan,status}  NS+ARO answered: success,
                                                          duplicate, neighbour-cache-full,
                                                          removed; expired registrations
    testbed_radio_nd_router_advertisements_total{pan,kind}  solicited / unsolicited RAs sent
    testbed_radio_dongle_refused_total{pan,radio,cause}  what a USB dongle (Spinel) or SLIP
                                                          uplink refused (router): hdlc-*,
                                                          spinel-*, slip-*, wrong-channel,
                                                          oversize, line-lost, open-failed, ...
    testbed_radio_bootstrap_frames{direction}            histogram per bootstrap attempt (thing)
    testbed_radio_fragmented_datagrams_total{pan,node,outcome}  unicast datagrams the node sent
                                                          in fragments, by fate: delivered,
                                                          lost-one-fragment,
                                                          lost-several-fragments (router, fate.py)

The router exports every node of its medium (the medium's view: what really crossed the
channel); a thing exports itself (its station's view). Counters live in the radio objects that
the event loop mutates; the metrics endpoint scrapes from its own thread, so the loop publishes
immutable samples (``publish``, every ``PUBLISH_INTERVAL`` s) and scrapes read the latest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from testbed.node import declared_metrics as declared

PUBLISH_INTERVAL = 0.5
FRAGMENT_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16)
BOOTSTRAP_FRAME_BUCKETS = (5, 10, 20, 40, 80, 160, 320, 640)
_NODE = ("pan", "node")


@dataclass(frozen=True)
class NodeSample:
    pan: str
    node: str
    frames_sent: int
    frames_received: int
    airtime_s: float
    dropped: Mapping[str, int] = field(default_factory=dict)
    fragments: Mapping[int, int] = field(default_factory=dict)  # frames per packet -> packets
    filtered: Mapping[str, int] = field(default_factory=dict)
    retries: int | None = None
    queue_length: int | None = None
    fates: Mapping[str, int] = field(default_factory=dict)  # fragmented datagrams by outcome


@dataclass(frozen=True)
class PanSample:
    pan: str
    busy_s: float
    loss: float
    refused: Mapping[str, int] = field(default_factory=dict)  # ZEP datagrams, by cause
    # 6LoWPAN-ND at the border router (ndrouter): registrations now, requests by outcome,
    # router advertisements by kind.
    nd_registrations: int = 0
    nd_requests: Mapping[str, int] = field(default_factory=dict)
    nd_advertisements: Mapping[str, int] = field(default_factory=dict)
    # What the PAN's dongles and SLIP uplinks refused: (station, cause) -> count.
    radio_refused: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Samples:
    nodes: tuple[NodeSample, ...] = ()
    pans: tuple[PanSample, ...] = ()


def fragment_buckets(fragments: Mapping[int, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative histogram buckets and sum of a frames-per-packet count."""
    buckets = [
        (str(bound), float(sum(n for k, n in fragments.items() if k <= bound)))
        for bound in FRAGMENT_BUCKETS
    ]
    buckets.append(("+Inf", float(sum(fragments.values()))))
    return buckets, float(sum(k * n for k, n in fragments.items()))


class RadioCollector(Collector):
    def __init__(self) -> None:
        self.samples = Samples()

    def publish(self, samples: Samples) -> None:
        self.samples = samples  # one reference assignment: atomic for the scraping thread

    def collect(self) -> Iterator[Metric]:
        s = self.samples
        sent = declared.counter_family("testbed_radio_frames_sent")
        received = declared.counter_family("testbed_radio_frames_received")
        dropped = declared.counter_family("testbed_radio_frames_dropped")
        retries = declared.counter_family("testbed_radio_retries")
        fragments = declared.histogram_family("testbed_radio_fragments_per_packet")
        airtime = declared.counter_family("testbed_radio_airtime_seconds")
        queue = declared.gauge_family("testbed_radio_queue_length")
        filtered = declared.counter_family("testbed_radio_packets_filtered")
        fates = declared.counter_family("testbed_radio_fragmented_datagrams")
        for n in s.nodes:
            key = [n.pan, n.node]
            sent.add_metric(key, n.frames_sent)
            received.add_metric(key, n.frames_received)
            airtime.add_metric(key, n.airtime_s)
            for cause, count in sorted(n.dropped.items()):
                dropped.add_metric([*key, cause], count)
            for kind, count in sorted(n.filtered.items()):
                filtered.add_metric([*key, kind], count)
            if n.retries is not None:
                retries.add_metric(key, n.retries)
            if n.queue_length is not None:
                queue.add_metric(key, n.queue_length)
            for outcome, count in sorted(n.fates.items()):
                fates.add_metric([*key, outcome], count)
            if n.fragments:
                buckets, total = fragment_buckets(n.fragments)
                fragments.add_metric(key, buckets, total)
        busy = declared.counter_family("testbed_radio_channel_busy_seconds")
        loss = declared.gauge_family("testbed_radio_link_loss_ratio")
        refused = declared.counter_family("testbed_radio_datagrams_refused")
        registered = declared.gauge_family("testbed_radio_nd_registrations")
        requests = declared.counter_family("testbed_radio_nd_registration_requests")
        adverts = declared.counter_family("testbed_radio_nd_router_advertisements")
        dongle = declared.counter_family("testbed_radio_dongle_refused")
        for p in s.pans:
            busy.add_metric([p.pan], p.busy_s)
            loss.add_metric([p.pan], p.loss)
            for cause, count in sorted(p.refused.items()):
                refused.add_metric([p.pan, cause], count)
            registered.add_metric([p.pan], p.nd_registrations)
            for status, count in sorted(p.nd_requests.items()):
                requests.add_metric([p.pan, status], count)
            for kind, count in sorted(p.nd_advertisements.items()):
                adverts.add_metric([p.pan, kind], count)
            for (radio, cause), count in sorted(p.radio_refused.items()):
                dongle.add_metric([p.pan, radio, cause], count)
        yield from (sent, received, dropped, retries, fragments, airtime, queue, filtered, fates)
        yield from (busy, loss, refused, registered, requests, adverts, dongle)


def bootstrap_frames_histogram(registry: CollectorRegistry) -> Histogram:
    return declared.histogram("testbed_radio_bootstrap_frames", registry)
