"""The kernel settings (sysctls) the plan gives each node's network namespace: IPv6 on every
interface, no DAD, no router advertisements accepted, no IPv4 forwarding, and IPv6 forwarding
on routers only."""

from __future__ import annotations

ALL = {
    # Docker leaves IPv6 off on interfaces created later (TUN); DAD would delay binding.
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv6.conf.default.disable_ipv6": "0",
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
}
ROUTER = {"net.ipv6.conf.all.forwarding": "1"}
# No IPv4 path around the policy: Docker gives every container an IPv4 address on every network,
# so a router forwarding IPv4 would carry it unfiltered (its forward chain drops IPv4 as well).
NO_IPV4_FORWARDING = {"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.forwarding": "0"}


def no_router_advertisements(interfaces: int) -> dict[str, str]:
    """accept_ra=0 on every interface: the plan's routes are static, and a router advertisement
    from any peer (on mgmt: any node) must not add a default route. Docker writes these after it
    has attached the networks (eth0..ethN-1, in no fixed order, hence all of them); ``default``
    covers the TUNs created later."""
    names = ["all", "default", *(f"eth{i}" for i in range(interfaces))]
    return {f"net.ipv6.conf.{n}.accept_ra": "0" for n in names}
