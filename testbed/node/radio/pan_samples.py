"""What a PAN attachment publishes for the metrics (testbed.node.radio.metrics): a station's own
sample, or the medium's view of every node of its PAN and the PAN's own sample.

``version`` lets an idle station skip its publish: a packed thing host runs the housekeeping
that publishes twice a second for each of its things, and most of them are quiet.
"""

from __future__ import annotations

from typing import Any

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio.frontend import MediumHub
from testbed.node.radio.metrics import NodeSample, PanSample
from testbed.node.radio.ndrouter import RouterPort
from testbed.node.radio.port import StationPort
from testbed.node.radio.tun import Tun
from testbed.node.radio.zep_client import ZepClient


class PanSamples:
    """Mixed into a PAN attachment (testbed.node.radio.attach), which sets these attributes."""

    config: RadioPanConfig
    node: str
    port: StationPort
    tun: Tun
    hub: MediumHub | None
    client: ZepClient | None

    def refusals(self) -> dict[tuple[str, str], int]:
        raise NotImplementedError

    def version(self) -> tuple[float, ...] | None:
        """What a station's sample is made of, as totals (every counter only grows, so equal
        totals mean an equal sample); None for the medium's side, which publishes always."""
        if self.client is None:
            return None
        st = self.port.station
        return (
            st.frames_sent,
            st.frames_received,
            self.port.airtime_s,
            st.dropped.total(),
            st.reassembler.dropped_fragments.total(),
            st.fragments_per_packet.total(),
            self.client.dropped.total(),
            self.tun.write_dropped,
            self.port.packets_filtered.total(),
        )

    def samples(self) -> list[NodeSample]:
        pan, st = self.config.pan, self.port.station
        # Only the drops: the whole snapshot (reassembly state and all) is for GET /state, and
        # this runs every PUBLISH_INTERVAL in every station of a thing host.
        own_dropped = st.dropped_frames()
        if self.client is not None:
            for reason, count in self.client.dropped.items():
                own_dropped[reason] = own_dropped.get(reason, 0) + count
            own_dropped["tun-write"] = self.tun.write_dropped
            return [
                NodeSample(
                    pan,
                    self.node,
                    st.frames_sent,
                    st.frames_received,
                    self.port.airtime_s,
                    own_dropped,
                    dict(st.fragments_per_packet),
                    dict(self.port.packets_filtered),
                )
            ]
        assert self.hub is not None
        out = []
        nodes: dict[str, dict[str, Any]] = self.hub.medium.snapshot(links=False)["nodes"]  # type: ignore[assignment]
        fates = self.hub.medium.fates.by_sender()
        for name, n in nodes.items():
            dropped = dict(n["dropped"])
            mine = name == self.node
            if mine:
                for cause, count in own_dropped.items():
                    dropped[cause] = dropped.get(cause, 0) + count
            out.append(
                NodeSample(
                    pan,
                    name,
                    n["transmissions"],
                    n["frames_received"],
                    n["airtime_s"],
                    dropped,
                    dict(st.fragments_per_packet) if mine else {},
                    dict(self.port.packets_filtered) if mine else {},
                    retries=n["retries"],
                    queue_length=n["queue_length"],
                    fates=fates.get(name, {}),
                )
            )
        return out

    def pan_sample(self) -> PanSample | None:
        if self.hub is None:
            return None
        default = self.hub.medium.links.default
        nd = self.port.nd if isinstance(self.port, RouterPort) else None
        return PanSample(
            self.config.pan,
            self.hub.medium.busy_s,
            default.expected_loss,
            dict(self.hub.dropped),
            nd_registrations=len(nd.registrations()) if nd else 0,
            nd_requests=dict(nd.counters.registrations) if nd else {},
            nd_advertisements=dict(nd.counters.router_advertisements) if nd else {},
            radio_refused=self.refusals(),
        )
