"""Errors of the radio layer.

Two kinds, kept apart on purpose:

- ``MalformedError`` is about *input*: bytes that arrived from the medium, a node or a socket and
  violate a format (802.15.4, 6LoWPAN, ZEP). Garbled input is normal on a radio (and an attack
  surface), so every receive path catches it and counts ``reason``; it never ends a process.
- ``EncodeError`` is about a *request* of our own code that cannot be honoured (a packet that is
  not IPv6, a frame over 127 bytes). It points at a bug or a misconfiguration upstream.

``reason`` is a short, stable, dash-separated token: it becomes a metric label later.
"""

from __future__ import annotations

from testbed.node.errors import NodeError


class RadioError(NodeError):
    """Root of the radio layer's errors."""

    reason = "radio-error"

    def __init__(self, reason: str, detail: str = "", hint: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason, hint)
        self.reason = reason


class MalformedError(RadioError):
    """Input bytes violate the format being decoded."""


class EncodeError(RadioError):
    """We were asked to build something the formats cannot carry."""
