"""Settings for every test run.

Hypothesis: no per-example deadline. Its default (200 ms) turns one stalled example on a busy
shared machine into a failure (DeadlineExceeded, or Flaky when the re-run is fast), and speed
is measured by the scripts in bench/, not asserted in tests. Explicit ``@settings`` in a test
still override the other values.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("testbed", deadline=None, print_blob=True)
settings.load_profile("testbed")
