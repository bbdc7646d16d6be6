"""testbed.compose.document: the compose file declares what DockerEngine.deploy creates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.compose.document import (
    EXTENSION,
    NODE_IMAGE,
    ComposeOptions,
    compose_document,
    default_grafana_port,
    default_prometheus_port,
    escape_interpolation,
    render,
    rendered_paths,
    run_dir_of,
)
from testbed.contracts.node_config import CONFIG_DIR, STATE_DIR
from testbed.engines.docker import DockerEngine
from testbed.observe import grafana_service
from testbed.observe import service as observer
from testbed.plan import labels as L
from testbed.plan.model import Plan
from tests.unit.compose.conftest import ROOT, plan_for
from tests.unit.compose.fake_docker import RecordingClient

TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))


def deployed(plan: Plan) -> RecordingClient:
    client = RecordingClient()
    backend = DockerEngine(client=client)  # type: ignore[arg-type]
    backend.deploy(plan, NODE_IMAGE, Path(run_dir_of(plan)), lambda event, name: None)
    return client


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda p: p.name)
def test_services_match_what_the_backend_creates(topology: Path, tmp_path: Path) -> None:
    plan = plan_for(topology, "comp-unit", tmp_path / "run")
    client = deployed(plan)
    doc = compose_document(plan, ComposeOptions(prometheus_image=None))
    resources = {n.name: n.resource for n in plan.networks}
    assert set(doc["services"]) == {n.name for n in plan.containers()}
    for node in plan.containers():
        service = doc["services"][node.name]
        created = client.api.containers[node.resource]
        host = created.kwargs["host_config"]
        assert service["image"] == created.image
        assert service["container_name"] == created.kwargs["name"]
        assert service["hostname"] == created.kwargs["hostname"]
        assert service["labels"] == created.kwargs["labels"]
        assert service["environment"] == created.kwargs["environment"]
        assert service.get("cap_add") == host["cap_add"]
        assert service.get("devices") == host["devices"]
        assert service.get("sysctls") == host["sysctls"]
        assert service["stop_grace_period"] == f"{created.kwargs['stop_timeout']}s"
        # Volumes: the state volume read-write, the node's share of the run directory read-only.
        binds = {
            source: (spec["bind"], spec["mode"] == "ro") for source, spec in host["binds"].items()
        }
        mounts = {m["source"]: (m["target"], m.get("read_only", False)) for m in service["volumes"]}
        assert mounts == binds
        assert mounts[node.volume] == (str(STATE_DIR), False)
        # Networks: every interface of the plan with its address and the node's name as alias.
        endpoints = {
            net: (endpoint["ipv6_address"], endpoint["aliases"])
            for net, endpoint in created.networks.items()
        }
        declared = {
            resources[net]: (endpoint["ipv6_address"], endpoint["aliases"])
            for net, endpoint in service["networks"].items()
        }
        assert declared == endpoints
        assert doc["volumes"][node.volume] == {
            "name": node.volume,
            "labels": client.volumes.created[node.volume]["labels"],
        }


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda p: p.name)
def test_networks_match_what_the_backend_creates(topology: Path, tmp_path: Path) -> None:
    plan = plan_for(topology, "comp-unit", tmp_path / "run")
    client = deployed(plan)
    doc = compose_document(plan)
    assert set(doc["networks"]) == {n.name for n in plan.networks}
    for name, net in doc["networks"].items():
        created = client.networks.created[net["name"]]
        (pool,) = created["ipam"]["Config"]
        assert net["driver"] == created["driver"] == "bridge"
        assert net["enable_ipv6"] is created["enable_ipv6"] is True
        assert net["internal"] is created["internal"]
        assert net["labels"] == created["labels"]
        assert net["ipam"]["config"] == [{"subnet": pool["Subnet"], "gateway": pool["Gateway"]}]
        assert net["labels"][L.RUN] == plan.run
        assert plan.network(name).resource == net["name"]


def test_config_share_is_the_nodes_own_directory(default_plan: Plan) -> None:
    doc = compose_document(default_plan)
    for node in default_plan.nodes:
        (bind,) = [m for m in doc["services"][node.name]["volumes"] if m["type"] == "bind"]
        assert bind == {
            "type": "bind",
            "source": f"{run_dir_of(default_plan)}/nodes/{node.name}",
            "target": str(CONFIG_DIR),
            "read_only": True,
        }


def test_things_wait_for_healthy_infrastructure(default_plan: Plan) -> None:
    services = compose_document(default_plan)["services"]
    infra = [n.name for n in default_plan.nodes if n.tier == 0]
    for node in default_plan.nodes:
        service = services[node.name]
        if node.tier == 0:
            probe = ["CMD", "python3", "-m", "testbed.node.probe", "ready"]
            assert service["healthcheck"]["test"] == probe
            assert "depends_on" not in service
        else:
            assert service["depends_on"] == {n: {"condition": "service_healthy"} for n in infra}


def test_prometheus_service_is_the_observer_of_the_run(default_plan: Plan) -> None:
    doc = compose_document(default_plan, ComposeOptions(prometheus_port=23456))
    prom = doc["services"][observer.OBSERVER_NODE]
    url = "http://127.0.0.1:23456"
    assert prom["labels"] == observer.observer_labels(default_plan, url)
    assert prom["labels"][L.ROLE] == "observer"
    assert prom["networks"] == {
        "mgmt": {
            "ipv6_address": observer.observer_address(default_plan),
            "aliases": [observer.OBSERVER_NODE],
        }
    }
    assert prom["ports"] == ["127.0.0.1:23456:9090"]
    config = [m for m in prom["volumes"] if m["type"] == "bind"]
    assert config == [
        {
            "type": "bind",
            "source": f"{run_dir_of(default_plan)}/observe",
            "target": observer.CONFIG_MOUNT,
            "read_only": True,
        }
    ]
    data = f"tb-{default_plan.run}-prometheus-data"
    assert doc["volumes"][data]["labels"] == {L.RUN: default_plan.run, L.NODE: "prometheus"}


def test_no_top_level_name_and_no_version(default_plan: Plan) -> None:
    doc = yaml.safe_load(render(default_plan))
    assert set(doc) == {EXTENSION, "services", "networks", "volumes"}


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    texts = {
        render(plan_for(ROOT / "topologies" / "default.yaml", "office", tmp_path / "r"))
        for _ in range(3)
    }
    assert len(texts) == 1


def test_rendered_paths_round_trip(default_plan: Plan) -> None:
    paths = rendered_paths(render(default_plan))
    assert (paths.run, paths.run_dir, paths.topology) == (
        default_plan.run,
        run_dir_of(default_plan),
        default_plan.topology_path,
    )


def test_dollar_signs_survive_compose_interpolation(tmp_path: Path) -> None:
    plan = plan_for(ROOT / "topologies" / "minimal.yaml", "comp-unit", tmp_path / "a$HOME")
    text = render(plan)
    body = "".join(line for line in text.splitlines(True) if not line.startswith("#"))
    assert "a$$HOME" in body and "a$HOME" not in body.replace("$$", "")
    assert rendered_paths(text).run_dir == str(tmp_path / "a$HOME")
    assert escape_interpolation({"k": ["$x", 1]}) == {"k": ["$$x", 1]}


def test_prometheus_port_is_stable_per_run() -> None:
    ports = {default_prometheus_port("office") for _ in range(3)}
    assert len(ports) == 1
    assert 20000 <= ports.pop() < 30000
    assert default_prometheus_port("office") != default_prometheus_port("office-2")


def test_node_named_like_the_observer_is_refused(default_plan: Plan) -> None:
    import dataclasses

    first = dataclasses.replace(default_plan.nodes[0], name="prometheus")
    plan = dataclasses.replace(default_plan, nodes=(first, *default_plan.nodes[1:]))
    with pytest.raises(ValueError, match="Prometheus"):
        compose_document(plan)


def _labels_of(doc: dict[str, Any]) -> set[str]:
    return {svc["labels"][L.RUN] for svc in doc["services"].values()}


def test_every_object_carries_the_run_label(default_plan: Plan) -> None:
    doc = compose_document(default_plan)
    assert _labels_of(doc) == {default_plan.run}
    assert {v["labels"][L.RUN] for v in doc["volumes"].values()} == {default_plan.run}
    assert {n["labels"][L.RUN] for n in doc["networks"].values()} == {default_plan.run}


def test_grafana_service_is_the_one_up_starts_behind_a_profile(default_plan: Plan) -> None:
    options = ComposeOptions(grafana_port=23457, dashboards_dir="/repo/dashboards")
    doc = compose_document(default_plan, options)
    grafana = doc["services"]["grafana"]
    # Only with `--profile grafana`: a plain `up` must not need an image from a registry.
    assert grafana["profiles"] == ["grafana"]
    assert grafana["image"] == grafana_service.DEFAULT_IMAGE
    url = "http://127.0.0.1:23457"
    run_dir = Path(run_dir_of(default_plan))
    assert grafana["labels"] == grafana_service.grafana_labels(default_plan, url, run_dir)
    assert grafana["ports"] == ["127.0.0.1:23457:3000"]
    assert grafana["networks"] == {"mgmt": {"aliases": ["grafana"]}}
    assert grafana["environment"] == grafana_service.ENVIRONMENT
    assert grafana["depends_on"] == [observer.OBSERVER_NODE]
    binds = {m["target"]: m for m in grafana["volumes"] if m["type"] == "bind"}
    assert binds[grafana_service.SECRET_MOUNT]["source"] == str(run_dir / "grafana")
    assert binds[grafana_service.PROVISIONING_MOUNT]["source"] == "/repo/dashboards/provisioning"
    assert binds[grafana_service.DASHBOARDS_MOUNT]["source"] == "/repo/dashboards/json"
    assert all(m["read_only"] for m in binds.values())
    # The password comes from the file; neither the environment nor the labels carry one.
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    data = f"tb-{default_plan.run}-grafana-data"
    assert doc["volumes"][data]["labels"] == {L.RUN: default_plan.run, L.NODE: "grafana"}


def test_grafana_needs_prometheus_and_can_be_left_out(default_plan: Plan) -> None:
    assert (
        "grafana"
        not in compose_document(default_plan, ComposeOptions(grafana_image=None))["services"]
    )
    assert (
        "grafana"
        not in compose_document(default_plan, ComposeOptions(prometheus_image=None))["services"]
    )


def test_grafana_port_differs_from_prometheus_and_is_stable() -> None:
    for run in ("office", "comp-unit", "x"):
        assert default_grafana_port(run) != default_prometheus_port(run)
        assert 20000 <= default_grafana_port(run) < 30000
        assert default_grafana_port(run) == default_grafana_port(run)


def test_rendered_paths_name_the_dashboards_and_tolerate_older_files(default_plan: Plan) -> None:
    text = render(default_plan, ComposeOptions(dashboards_dir="/somewhere/dashboards"))
    assert rendered_paths(text).dashboards == "/somewhere/dashboards"
    older = text.replace("  dashboards: /somewhere/dashboards\n", "")
    assert rendered_paths(older).dashboards == ""
