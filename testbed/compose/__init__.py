"""Compose rendering: a plan as a docker-compose file (the `testbed render` verb, in
testbed.cli.compose), and the run directory it needs. The package is named after what it
makes; "render" is only the verb's name.

document.py  plan -> compose document (pure: the same inputs give the same text)
prepare.py   the run directory (plan, topology, minted credentials, Prometheus files)
tool.py      Debian's docker-compose (v1), run with an environment that keeps it working
"""
