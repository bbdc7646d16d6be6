"""Reading and driving nodes of a running test run through the real Docker backend."""

from __future__ import annotations

import json
import time
from typing import Any

from testbed.backends.docker import DockerBackend


def state(backend: DockerBackend, run: str, node: str) -> dict[str, Any]:
    answer = backend.node_state(run, node)
    assert answer is not None, f"{node} did not answer GET /state"
    role_state = answer.get("state")
    assert isinstance(role_state, dict), answer
    return role_state


def action(backend: DockerBackend, run: str, node: str, name: str, **params: Any) -> Any:
    result = backend.exec(
        run, node, ["python3", "-m", "testbed.node.probe", "action", name, json.dumps(params)]
    )
    answer = json.loads(result.output)
    assert result.exit_code == 0, f"{node} {name} {params}: {answer}"
    return answer["result"]


def sql(backend: DockerBackend, run: str, node: str, query: str) -> list[list[Any]]:
    """A read-only query against a trust center's registry, inside its container."""
    script = (
        "import json, sqlite3; "
        "c = sqlite3.connect('file:/var/lib/testbed/registry.sqlite?mode=ro', uri=True); "
        f"print(json.dumps(c.execute({query!r}).fetchall()))"
    )
    result = backend.exec(run, node, ["python3", "-c", script])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
