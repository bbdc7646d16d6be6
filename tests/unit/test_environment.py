"""The virtual environment the Makefile builds: libraries that must not shadow each other."""

from __future__ import annotations

import urllib3


def test_urllib3_is_not_replaced_by_urllib3_future() -> None:
    # grafana-client -> niquests -> urllib3-future, whose wheel overwrites the urllib3 package
    # (its patch versions are >= 900). Under the docker SDK that broke Unix-socket requests
    # ("Remote end closed connection", "Bad file descriptor"). `make venv` installs it from
    # source with URLLIB3_NO_OVERRIDE=1 so that it lives beside urllib3 as urllib3_future.
    patch = int("".join(c for c in urllib3.__version__.split(".")[2] if c.isdigit()) or 0)
    assert patch < 900, f"urllib3 {urllib3.__version__} is urllib3-future: run `make venv` again"
