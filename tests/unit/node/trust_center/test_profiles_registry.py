"""The trust center's profile registry: which servers a ``profiles`` attribute asks for."""

from __future__ import annotations

import pytest

from testbed.contracts.profiles import PROFILE_NAMES
from testbed.node.errors import ConfigError
from testbed.node.thing.profiles import PROFILES
from testbed.node.trust_center.profiles import profile_names, servers_for


def test_both_sides_and_the_topology_know_the_same_profiles() -> None:
    # The thing's registry is the one list; the trust center serves each of its names.
    assert set(profile_names()) == set(PROFILE_NAMES)


def test_the_thing_implements_every_profile_of_the_contract() -> None:
    # The contract's names are what a topology may ask for; the thing has one factory per name.
    assert tuple(PROFILES) == PROFILE_NAMES


def test_servers_for_a_profiles_attribute() -> None:
    assert servers_for(None) == servers_for("") == {"coap", "coaps"}
    assert servers_for("edhoc-oscore") == {"coap"}
    assert servers_for("dtls-psk, dtls-cert") == {"coaps"}
    with pytest.raises(ConfigError, match="dtls-rpk"):
        servers_for("edhoc-oscore,dtls-rpk")
