"""What the radio medium (medium.py) takes and gives: its configuration, the events it hands
its front end, and the causes it counts drops under."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from testbed.node.radio.links import LinkConfig

QUEUE_FULL = "queue-full"
RETRIES_EXHAUSTED = "retries-exhausted"
CHANNEL_LOSS = "channel-loss"
GARBLED = "garbled"


@dataclass(frozen=True)
class MediumConfig:
    seed: int = 0
    max_frame_retries: int = 3  # macMaxFrameRetries (RIOT's own default is 4)
    queue_limit: int = 128  # frames per node, the one on the air included
    default_link: LinkConfig = field(default_factory=LinkConfig)
    record_air: bool = False


# Delivery and TxStatus are named tuples (immutable) rather than frozen dataclasses: the medium
# makes one of each per frame and receiver, and a named tuple is built about twice as fast.
class Delivery(NamedTuple):
    """``frame`` (a PSDU with FCS) arrives at node ``dst`` at ``time``."""

    time: float
    src: str
    dst: str
    frame: bytes


class TxStatus(NamedTuple):
    """The medium's MAC is done with a frame of ``node`` (emulated-MAC nodes; one-shot frames
    report after their single transmission)."""

    time: float
    node: str
    seq: int
    ok: bool
    attempts: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OnAir:
    """A transmission, for captures: ``frame`` occupied the channel from ``start`` to ``end``."""

    start: float
    end: float
    node: str
    frame: bytes


MediumEvent = Delivery | TxStatus | OnAir
