"""The topology file: what a user describes (schema) and how it is read (loader)."""

from testbed.topology.loader import load_topology, parse_topology
from testbed.topology.schema import Topology

__all__ = ["Topology", "load_topology", "parse_topology"]
