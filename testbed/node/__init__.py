"""Everything that runs INSIDE a container.

Rule: nothing under ``testbed.node`` imports host-side libraries (docker, ansible_runner, typer,
rich, pydantic); a test enforces it. What host and node both read and write (node.json, the
radio and proxy attributes, the metric catalogue) is in ``testbed.contracts``.
"""
