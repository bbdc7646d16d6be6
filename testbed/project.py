"""Where the project's own files are: the tree that holds the ``testbed`` package.

Playbooks, dashboards, the image Dockerfiles and pyproject.toml are read from there (a checkout,
or an editable install of one). Computed once here; everything else imports it.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = PROJECT_ROOT / "playbooks"
DASHBOARDS = PROJECT_ROOT / "dashboards"
