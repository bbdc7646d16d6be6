"""default.yaml itself: its PAN is the emulated 802.15.4 medium.

The building is brought up without commissioning, the PAN set to 10% frame loss with
`testbed link set`, then commissioned through the phases: every thing ends operational and each
bootstrap's frames are recorded. 100% loss then stops the PAN's traffic; `reset` restores it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import state, wait_for

pytestmark = pytest.mark.integration
THINGS = ("thermostat-01", "thermostat-02", "smoke-01", "lamp-01", "lamp-02", "lamp-03")


@pytest.fixture(scope="module")
def lossy(docker_client, node_image, cli_env) -> Iterator[tuple[DockerEngine, str]]:  # type: ignore[no-untyped-def]
    run = "it-lossy-pan"
    remove_run(docker_client, run)
    topology = str(ROOT / "topologies" / "default.yaml")
    try:
        run_cli(["up", "-t", topology, "--run", run, "--no-wait"], cli_env)
        run_cli(["link", "set", "pan-floor1", "--loss", "10%", "--run", run], cli_env)
        shown = run_cli(["link", "show", "--run", run], cli_env).stdout
        assert "pan-floor1" in shown and "10" in shown, shown
        run_cli(["phase", "install", "--run", run], cli_env, timeout=900)
        run_cli(["phase", "commission", "--run", run], cli_env, timeout=900)
        yield DockerEngine(docker_client), run
    finally:
        run_cli(["down", "--run", run], cli_env, check=False)
        remove_run(docker_client, run)


def test_default_building_commissions_at_10_percent_frame_loss(lossy) -> None:  # type: ignore[no-untyped-def]
    backend, run = lossy
    for name in THINGS:
        thing: dict[str, Any] = state(backend, run, name)
        assert thing["lifecycle"] == "operational", (name, thing.get("reason"))
        radio = thing["bootstrap"]["radio"]  # the frames this bootstrap put on the air
        assert radio["frames_sent"] >= radio["packets_sent"] >= 1, radio
        assert radio["frames_received"] >= 1, radio
    # The 10% took effect in the medium (in the border router): frames were lost to the channel.
    plan_mgmt = next(s.addresses["mgmt"] for s in backend.status(run) if s.node == "br1")
    script = (
        "import urllib.request; print(urllib.request.urlopen("
        f"'http://[{plan_mgmt}]:9180/metrics').read().decode())"
    )
    metrics = backend.exec(run, "br1", ["python3", "-c", script]).output.decode()
    lost = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("testbed_radio_frames_dropped_total{") and 'cause="channel-loss"' in line
    ]
    assert sum(lost) > 0, "no frame was lost on the channel at 10% loss"


def test_full_loss_stops_the_pan_and_reset_restores_it(lossy, cli_env) -> None:  # type: ignore[no-untyped-def]
    backend, run = lossy

    def read() -> dict[str, Any]:
        result = backend.exec(
            run,
            "backend",
            [
                "python3",
                "-m",
                "testbed.node.probe",
                "action",
                "read",
                '{"thing": "lamp-01", "resource": "light"}',
            ],
        )
        import json

        answer: dict[str, Any] = json.loads(result.output or b"{}")
        return answer.get("result", answer)

    wait_for(lambda: read().get("code") == "2.05", 90, "a read through the lossy PAN")
    run_cli(["link", "set", "pan-floor1", "--loss", "100%", "--run", run], cli_env)
    cut = read()
    assert cut.get("code") != "2.05", cut
    run_cli(["link", "reset", "pan-floor1", "--run", run], cli_env)
    wait_for(lambda: read().get("code") == "2.05", 90, "reads after reset")
