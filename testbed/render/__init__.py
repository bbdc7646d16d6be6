"""`testbed render`: a plan as a docker-compose file, and the run directory it needs.

compose.py   plan -> compose document (pure: the same inputs give the same text)
prepare.py   the run directory (plan, topology, minted credentials, Prometheus files)
tool.py      Debian's docker-compose (v1), run with an environment that keeps it working
"""
