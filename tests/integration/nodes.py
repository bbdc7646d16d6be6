"""Reading and driving nodes of a running test run through the real Docker engine."""

from __future__ import annotations

import json
import time
from typing import Any

from testbed.engines.docker import DockerEngine


def state(backend: DockerEngine, run: str, node: str) -> dict[str, Any]:
    answer = backend.node_state(run, node)
    assert answer is not None, f"{node} did not answer GET /state"
    role_state = answer.get("state")
    assert isinstance(role_state, dict), answer
    return role_state


def action(backend: DockerEngine, run: str, node: str, name: str, **params: Any) -> Any:
    result = backend.exec(
        run, node, ["python3", "-m", "testbed.node.probe", "action", name, json.dumps(params)]
    )
    answer = json.loads(result.output)
    assert result.exit_code == 0, f"{node} {name} {params}: {answer}"
    return answer["result"]


def sql(backend: DockerEngine, run: str, node: str, query: str) -> list[list[Any]]:
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


def metrics(backend: DockerEngine, run: str, node: str, prefix: str) -> dict[str, float]:
    """The node's /metrics as Prometheus sees it (fetched inside it from its mgmt address),
    only the series whose names start with ``prefix``: series -> value."""
    script = (
        "import json, urllib.request; c = json.load(open('/etc/testbed/node.json')); "
        "a = next(i['ipv6'].split('/')[0] for i in c['interfaces'] if i['network'] == 'mgmt'); "
        "print(urllib.request.urlopen(f'http://[{a}]:9180/metrics').read().decode())"
    )
    result = backend.exec(run, node, ["python3", "-c", script])
    assert result.exit_code == 0, result.output
    out = {}
    for line in result.output.decode().splitlines():
        if line.startswith(prefix):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out
