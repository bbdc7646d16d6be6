"""The host-network comparison that guards the test session and the bench smoke runs."""

from __future__ import annotations

from tests.host_network import DOCKER_DEVICE, DOCKER_RULE, HostNetwork


def test_a_lost_default_route_and_a_new_table_are_differences() -> None:
    before = HostNetwork(("default via 192.0.2.1 dev eth0",), (), ("table ip filter {",))
    after = HostNetwork((), (), ("table ip filter {", "table inet testbed_mgmt {"))
    assert before.differences(after) == [
        "routes4: lost 'default via 192.0.2.1 dev eth0'",
        "firewall: gained 'table inet testbed_mgmt {'",
    ]
    assert before.differences(before) == []


def test_what_the_docker_daemon_manages_is_left_out() -> None:
    assert DOCKER_DEVICE.search("fd3a::/64 dev br-2c69accd9fe5 proto kernel metric 256")
    assert DOCKER_DEVICE.search("172.18.0.0/16 dev docker_gwbridge proto kernel")
    assert DOCKER_RULE.search("-A FORWARD -i docker_gwbridge -o docker_gwbridge -j DROP")
    assert DOCKER_RULE.search("-A POSTROUTING -s 172.24.0.8/32 -d 172.24.0.8/32 -p tcp -m tcp "
                              "--dport 9090 -j MASQUERADE")  # fmt: skip
    assert not DOCKER_RULE.search("table inet testbed_mgmt {")
    assert not DOCKER_DEVICE.search("default via fd00::1 dev eth0 metric 1024")
