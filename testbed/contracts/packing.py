"""Packed things (docs/packed-things.md): what host and node agree on about a thing host.

The planner writes a thing host's node.json with role ``ROLE`` and the names of its things in
the attribute ``THINGS_ATTRIBUTE``; each packed thing's own node.json and credentials are in
``THINGS_DIR/<name>/`` beside it, and its state in ``THINGS_DIR/<name>/`` on the host's volume.
"""

from __future__ import annotations

ROLE = "thing_host"
THINGS_ATTRIBUTE = "things"  # the packed things' names, comma-separated
THINGS_DIR = "things"  # beside node.json and on the volume: one folder per packed thing
