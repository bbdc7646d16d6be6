"""Contracts between the host and the nodes: data shapes both sides build, parse and validate
the same way. Standard library only, because the node image runs them without the host's
libraries (pydantic, docker, ansible); the host's topology schema wraps them."""
