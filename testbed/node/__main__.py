"""Entry point: ``python -m testbed.node [--config PATH] [--state-dir DIR]``."""

from testbed.node.app import main

raise SystemExit(main())
