"""The names of the bootstrap profiles, the one list host and node share.

The topology schema accepts exactly these names in a thing's ``profile``, the planner writes the
name into the thing's attributes and the thing builds the profile from its registry
(testbed.node.thing.profiles, whose ``PROFILES`` has one factory per name here; a unit test ties
the two). Standard library only.
"""

from __future__ import annotations

DEFAULT_PROFILE = "edhoc-oscore"
PROFILE_NAMES: tuple[str, ...] = ("edhoc-oscore", "dtls-cert", "dtls-psk")
