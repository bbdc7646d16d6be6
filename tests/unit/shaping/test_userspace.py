"""The user-space shaper's tc redirects (run for real by tests/vm/test_userspace_host.py)."""

from __future__ import annotations

from testbed.node.shaping import userspace


def test_redirects_cover_both_directions_for_global_and_ula_destinations() -> None:
    commands = userspace.redirect_commands("eth2", "internet")
    assert commands[0] == ["tc", "qdisc", "add", "dev", "eth2", "clsact"]
    redirects = {(c[5], c[14], c[-1]) for c in commands[1:]}
    assert redirects == {
        ("egress", "fc00::/7", "shp-internet-e"),
        ("egress", "2000::/3", "shp-internet-e"),
        ("ingress", "fc00::/7", "shp-internet-i"),
        ("ingress", "2000::/3", "shp-internet-i"),
    }
    assert all(c[6:12] == ["prio", "1", "protocol", "ipv6", "u32", "match"] for c in commands[1:])
    assert userspace.teardown_commands("eth2") == [["tc", "qdisc", "del", "dev", "eth2", "clsact"]]


def test_device_names_fit_ifnamsiz() -> None:
    for link in ("backbone", "internet"):
        for direction in (userspace.EGRESS, userspace.INGRESS):
            assert len(userspace.device_name(link, direction)) <= 15
