"""Errors of the CoAP secure channel layer (EDHOC + OSCORE), under the testbed's one root.

TestbedError
└── ChannelError             the secure channel could not be set up or used
    ├── CredentialError      a key or CCS file is unusable (mode, format, mismatch)
    └── HandshakeRefused     the peer answered EDHOC or the first OSCORE request with an error
"""

from __future__ import annotations

from testbed.errors import TestbedError


class ChannelError(TestbedError):
    """Exit code 1 (generic) where it ends a process: a role handles it and reports the state."""


class CredentialError(ChannelError):
    pass


class HandshakeRefused(ChannelError):
    def __init__(self, message: str, code: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.code = code  # the CoAP response code as dotted text, e.g. "4.01"
