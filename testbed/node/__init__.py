"""Everything that runs INSIDE a container.

Rule: nothing under ``testbed.node`` imports host-side libraries (docker, ansible_runner, typer,
rich, pydantic); a test enforces it. The host may import ``testbed.node.config`` to write the
files the node reads.
"""
