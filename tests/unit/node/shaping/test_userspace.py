"""The user-space shaper's tc redirects (run for real by tests/vm/test_userspace_host.py)."""

from __future__ import annotations

from testbed.node.shaping import userspace


def test_redirects_cover_both_directions_for_global_and_ula_destinations() -> None:
    commands = userspace.redirect_commands("eth2", "internet")
    assert commands[0] == ["tc", "qdisc", "add", "dev", "eth2", "clsact"]
    redirects = [c for c in commands[1:] if "mirred" in c]
    assert {(c[5], c[14], c[-1]) for c in redirects} == {
        ("egress", "fc00::/7", "shp-internet-e"),
        ("egress", "2000::/3", "shp-internet-e"),
        ("ingress", "fc00::/7", "shp-internet-i"),
        ("ingress", "2000::/3", "shp-internet-i"),
    }
    assert all(c[6:12] == ["prio", "2", "protocol", "ipv6", "u32", "match"] for c in redirects)
    assert userspace.teardown_commands("eth2") == [["tc", "qdisc", "del", "dev", "eth2", "clsact"]]


def test_neighbour_discovery_is_let_through_before_any_redirect() -> None:
    """ICMPv6 133-137 match first (prio 1) in both directions, with no action: the kernel's
    path (the host test proves neighbours resolve; here, that no type is missing)."""
    commands = userspace.redirect_commands("eth2", "internet")
    passes = [c for c in commands[1:] if "mirred" not in c]
    assert {(c[5], int(c[c.index("icmp_type") + 1])) for c in passes} == {
        (d, t) for d in ("egress", "ingress") for t in (133, 134, 135, 136, 137)
    }
    for c in passes:
        assert c[6:8] == ["prio", "1"] and "action" not in c
        assert c[c.index("protocol", 9) : c.index("protocol", 9) + 3] == ["protocol", "58", "0xff"]
        assert c[-2:] == ["classid", ":1"]  # what makes the u32 key terminal


def test_device_names_fit_ifnamsiz() -> None:
    for link in ("backbone", "internet"):
        for direction in (userspace.EGRESS, userspace.INGRESS):
            assert len(userspace.device_name(link, direction)) <= 15
