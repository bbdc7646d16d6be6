"""The cross-domain policy as a border router enforces it (nftables forward chain, IPv6)."""
