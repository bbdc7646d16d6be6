"""One building through every lifecycle phase, driven by the playbooks (real Ansible, real nodes).

two-operators.yaml comes up with things installed and waiting (auto-commission off), then:
install -> (firmware refusals) -> commission (twice: changed only the first time) -> maintain
(a thing killed mid-phase fails with a reason, the others finish, --resume completes it) ->
rebootstrap -> decommission (and the refusal of a decommissioned thing in its old domain) ->
recommission of occupancy-01 from the HVAC to the lighting contractor. After each phase: the
thing's own status, the trust centers' registries, and what the backend can read.

The tests of this module run in order on one building (module-scoped fixture).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import bringup
from testbed.engines.docker import DockerEngine
from testbed.phases import inventory, records
from testbed.phases.runner import PhaseEvent, PhaseResult, run_phase
from tests.integration.conftest import ROOT, RUN_PREFIX, phase_environment, remove_run, run_cli
from tests.integration.nodes import action, sql, state, wait_for

pytestmark = pytest.mark.integration

TOPOLOGY = ROOT / "topologies" / "two-operators.yaml"
MOVER = "occupancy-01"  # the thing transferred from hvac to lighting
THINGS = ("thermostat-01", "thermostat-02", "co2-01", "occupancy-01", "lamp-01", "lamp-02")


@dataclass
class Building:
    backend: DockerEngine
    run: str
    run_dir: Path
    serials: dict[str, str]
    env: dict[str, str]

    def phase(self, name: str, **kwargs: Any) -> PhaseResult:
        return run_phase(name, engine=self.backend, run=self.run, **kwargs)

    def status(self, thing: str) -> dict[str, Any]:
        result: dict[str, Any] = action(self.backend, self.run, thing, "status")
        return result

    def devices(self, tc: str) -> dict[str, dict[str, Any]]:
        answer = action(self.backend, self.run, tc, "devices")
        entries = answer["devices"] if isinstance(answer, dict) else answer
        return {e["serial"]: e for e in entries}

    def listed(self) -> dict[str, Any]:
        """What the backend learned from the trust centers (thing -> entry)."""
        things: dict[str, Any] = state(self.backend, self.run, "backend")["backend"]["things"]
        return things

    def read(self, thing: str) -> dict[str, Any]:
        result: dict[str, Any] = action(
            self.backend, self.run, "backend", "read", thing=thing, resource=self.resource(thing)
        )
        return result

    def resource(self, thing: str) -> str:
        if thing.startswith("thermostat"):
            return "temperature"
        return "light" if thing.startswith("lamp") else "value"

    def lifecycle(self, thing: str) -> str | None:
        """The thing's lifecycle state, or None while it does not answer."""
        answer = self.backend.node_state(self.run, thing) or {}
        role_state = answer.get("state") or {}
        return role_state.get("lifecycle")

    def readable(self, thing: str) -> bool:
        if thing not in self.listed():
            return False
        answer = self.read(thing)
        return bool(answer.get("code") == "2.05" and answer.get("protected"))


@pytest.fixture(scope="module")
def building(
    docker_client: Any, node_image: str, cli_env: dict[str, str], testbed_home: Path
) -> Iterator[Building]:
    run = f"{RUN_PREFIX}ans-{uuid.uuid4().hex[:6]}"
    with phase_environment(cli_env) as env:
        backend = DockerEngine(docker_client)
        try:
            plan, text = bringup.plan_for(TOPOLOGY, run)
            # commissioning: phases (the default): every thing waits for the commission phase.
            assert {
                n.config.attributes["auto-commission"] for n in plan.nodes if n.role == "thing"
            } == {"false"}
            result = bringup.up(backend, plan, text, node_image, lambda event, name: None)
            serials = {
                n.name: n.config.attributes["serial"] for n in plan.nodes if n.role == "thing"
            }
            yield Building(backend, run, result.run_dir, serials, env)
        finally:
            try:
                bringup.down(backend, run)
            except Exception:
                remove_run(docker_client, run)


def test_install(building: Building) -> None:
    result = building.phase("install")
    assert result.succeeded, result.hosts
    assert set(result.hosts) == set(THINGS)
    for thing in THINGS:
        status = building.status(thing)
        assert status["lifecycle"] == "installed", (thing, status)
        assert status["ldevid_serial"] is None
    hvac, lighting = building.devices("tc-hvac"), building.devices("tc-lighting")
    mover = building.serials[MOVER]
    assert hvac[mover]["record"] is True and hvac[mover]["state"] == "imported"
    assert mover not in lighting
    assert building.serials["lamp-01"] in lighting and building.serials["lamp-01"] not in hvac
    assert not set(building.listed()) & set(THINGS)  # nothing operational: nothing to read


def test_no_maintenance_before_commissioning(building: Building) -> None:
    result = building.phase("maintain", limit="lamp-01", extravars={"firmware_version": "2.0.0"})
    assert result.failed_hosts == ["lamp-01"]
    assert "cannot update the firmware of a installed thing" in result.hosts["lamp-01"].reason


def test_commission_changes_only_the_first_time(building: Building) -> None:
    first = building.phase("commission")
    assert first.succeeded, {h: o.reason for h, o in first.hosts.items()}
    assert {h: o.outcome for h, o in first.hosts.items()} == dict.fromkeys(THINGS, "changed")
    second = building.phase("commission")
    assert second.succeeded
    assert {h: o.outcome for h, o in second.hosts.items()} == dict.fromkeys(THINGS, "ok")
    for thing in THINGS:
        status = building.status(thing)
        assert status["lifecycle"] == "operational" and status["ldevid_serial"], status
    hvac = building.devices("tc-hvac")
    assert hvac[building.serials[MOVER]]["state"] == "enrolled"
    assert hvac[building.serials[MOVER]]["ldevid_serial"] == building.status(MOVER)["ldevid_serial"]
    wait_for(lambda: building.readable(MOVER), 60, f"the backend to read {MOVER}")


def test_tampered_and_older_firmware_are_refused(building: Building) -> None:
    tampered = building.phase(
        "maintain",
        limit="lamp-01",
        extravars={"firmware_version": "2.0.0", "firmware_image": "2.0.0-tampered"},
    )
    assert tampered.failed_hosts == ["lamp-01"]
    assert "firmware 2.0.0 refused: digest-mismatch" in tampered.hosts["lamp-01"].reason
    older = building.phase("maintain", limit="lamp-01", extravars={"firmware_version": "1.0.0"})
    assert "refused: downgrade" in older.hosts["lamp-01"].reason
    status = building.status("lamp-01")
    assert status["lifecycle"] == "operational" and status["firmware"] == "1.1.0"
    assert status["reason"] == "firmware-update:downgrade"
    wait_for(lambda: building.readable("lamp-01"), 60, "lamp-01 to be readable still")


def test_maintain_survives_a_killed_thing_and_resume_completes_it(
    building: Building, docker_client: Any
) -> None:
    victim = "co2-01"
    before = {t: building.status(t) for t in THINGS}
    killed = threading.Event()

    def kill_when_updating(event: PhaseEvent) -> None:
        if (
            event.kind == "task"
            and event.task.startswith("Firmware update")
            and not killed.is_set()
        ):
            docker_client.containers.get(f"tb-{building.run}-{victim}").kill()
            killed.set()

    first = building.phase("maintain", on_event=kill_when_updating)
    assert killed.is_set()
    assert first.failed_hosts == [victim]
    assert first.hosts[victim].reason, "a failed host must say why"
    newest = {"acme": "2.0.0", "ventis": "2.0.0", "lumina": "1.1.0"}  # lumina: same major only
    for thing in THINGS:
        if thing == victim:
            continue
        status = building.status(thing)
        vendor = "acme" if thing.startswith("thermo") else "lumina" if "lamp" in thing else "ventis"
        assert status["firmware"] == newest[vendor], (thing, status)
        assert status["generation"] > before[thing]["generation"], thing  # keys rotated
        assert status["ldevid_serial"] != before[thing]["ldevid_serial"]
    recorded = list(records.read_phases(building.run_dir))[-1]
    assert recorded["phase"] == "maintain" and recorded["status"] == "failed"
    assert recorded["hosts"][victim]["outcome"] in ("failed", "unreachable")
    # The thing comes back (its state is on its volume) and --resume finishes the phase.
    docker_client.containers.get(f"tb-{building.run}-{victim}").start()
    wait_for(lambda: building.lifecycle(victim) == "operational", 60, f"{victim} to be back")
    resumed = building.phase("maintain", resume=True)
    assert resumed.succeeded, {h: o.reason for h, o in resumed.hosts.items()}
    assert resumed.hosts[victim].outcome == "changed"
    assert all(resumed.hosts[t].outcome == "ok" for t in THINGS if t != victim)
    assert building.status(victim)["firmware"] == "2.0.0"
    wait_for(lambda: building.readable(victim), 60, f"the backend to read {victim} again")


def test_rebootstrap(building: Building) -> None:
    before = building.status(MOVER)
    result = building.phase("rebootstrap", limit=MOVER)
    assert result.succeeded and result.hosts[MOVER].outcome == "changed"
    after = building.status(MOVER)
    assert after["lifecycle"] == "operational"
    assert after["ldevid_serial"] != before["ldevid_serial"]
    hvac = building.devices("tc-hvac")[building.serials[MOVER]]
    assert hvac["ldevid_serial"] == after["ldevid_serial"]
    wait_for(lambda: building.readable(MOVER), 60, f"the backend to read {MOVER} after it")


def group_generation(building: Building, tc: str) -> int:
    ((generation,),) = sql(building.backend, building.run, tc, "SELECT generation FROM group_keys")
    return int(generation)


def test_decommission_and_no_way_back_in_the_old_domain(building: Building) -> None:
    thing = "thermostat-02"
    old_ldevid = building.status(thing)["ldevid_serial"]
    group_before = group_generation(building, "tc-hvac")
    assert building.status(thing)["group_generation"] == group_before
    result = building.phase("decommission", limit=thing)
    assert result.succeeded and result.hosts[thing].outcome == "changed"
    status = building.status(thing)
    assert status["lifecycle"] == "decommissioned" and status["ldevid_serial"] is None
    assert status["group_generation"] is None  # wiped with the other operational keys
    assert building.devices("tc-hvac")[building.serials[thing]]["state"] == "revoked"
    # The group key it had is replaced; a remaining member gets the new one when it renews.
    assert group_generation(building, "tc-hvac") == group_before + 1
    stayer = "thermostat-01"
    assert building.status(stayer)["group_generation"] == group_before
    assert building.phase("rebootstrap", limit=stayer).succeeded
    assert building.status(stayer)["group_generation"] == group_before + 1
    rows = sql(
        building.backend,
        building.run,
        "tc-hvac",
        f"SELECT revoked_at IS NOT NULL FROM certificates WHERE serial = {int(old_ldevid)}",
    )
    assert rows == [[1]]  # its LDevID is on the CRL
    wait_for(lambda: thing not in building.listed(), 30, "the backend to drop " + thing)
    # Commissioning it again in its old domain is refused by the thing (decommissioned) ...
    refused = run_cli(
        ["phase", "commission", "--run", building.run, "--limit", thing], building.env, check=False
    )
    assert refused.returncode == 12, refused.stdout + refused.stderr
    assert "cannot commission a decommissioned thing" in " ".join(refused.stdout.split())
    # ... and pointing it at its old trust center again does not help: that one refuses it.
    uri = inventory.inventory_for_run(building.backend, building.run).vars[
        "testbed_trust_center_uris"
    ]["hvac"]
    ccs = (building.run_dir / "nodes" / "tc-hvac" / "tc" / "tc.ccs.cbor").read_bytes()
    action(
        building.backend,
        building.run,
        thing,
        "transfer",
        domain="hvac",
        trust_center_uri=uri,
        trust_center_ccs=base64.b64encode(ccs).decode(),
    )
    again = building.phase("commission", limit=thing)
    assert again.failed_hosts == [thing]
    assert "revoked" in again.hosts[thing].reason, again.hosts[thing].reason
    refusals = sql(
        building.backend,
        building.run,
        "tc-hvac",
        f"SELECT reason FROM refusals WHERE serial = '{building.serials[thing]}'",
    )
    assert ["revoked"] in refusals


def test_recommission_to_the_lighting_contractor(building: Building) -> None:
    before = building.status(MOVER)
    assert before["domain"] == "hvac"
    result = building.phase("recommission", limit=MOVER, extravars={"to_domain": "lighting"})
    assert result.succeeded, result.hosts[MOVER].reason
    after = building.status(MOVER)
    assert (after["domain"], after["lifecycle"]) == ("lighting", "operational")
    serial = building.serials[MOVER]
    lighting = building.devices("tc-lighting")[serial]
    assert lighting["state"] == "enrolled" and lighting["voucher_links"] == 2
    assert lighting["ldevid_serial"] == after["ldevid_serial"]
    # The old domain's keys are refused: revoked there, its LDevID on hvac's CRL.
    assert building.devices("tc-hvac")[serial]["state"] == "revoked"
    old = sql(
        building.backend,
        building.run,
        "tc-hvac",
        f"SELECT serial, revoked_at IS NOT NULL FROM certificates WHERE thing = '{serial}'",
    )
    assert old and all(revoked for _, revoked in old)
    # (certificate serials are per issuing CA: the new one is lighting's, valid there)
    new = sql(
        building.backend,
        building.run,
        "tc-lighting",
        f"SELECT revoked_at IS NULL FROM certificates WHERE serial = {int(after['ldevid_serial'])}",
    )
    assert new == [[1]]
    # The backend finds it through the lighting contractor now, and reads it end to end.
    wait_for(
        lambda: building.listed().get(MOVER, {}).get("domain") == "lighting",
        60,
        "the backend to list occupancy-01 under lighting",
    )
    wait_for(lambda: building.readable(MOVER), 60, f"the backend to read {MOVER} again")
    # The inventory follows the owner, not the label it was planned with.
    inv = inventory.inventory_for_run(building.backend, building.run)
    assert MOVER in inv.groups["domain_lighting"] and MOVER not in inv.groups["domain_hvac"]
    assert inv.hosts[MOVER]["testbed_planned_domain"] == "hvac"
    # So does `testbed status`: the owner the thing reports, next to the label it keeps.
    (shown,) = [
        n
        for n in bringup.with_lifecycle(building.backend, building.backend.status(building.run))
        if n.node == MOVER
    ]
    assert (shown.domain, shown.attributes["domain"]) == ("lighting", "hvac")
    # Doing it again changes nothing.
    again = building.phase("recommission", limit=MOVER, extravars={"to_domain": "lighting"})
    assert again.succeeded and again.hosts[MOVER].outcome == "ok"


IMPERSONATE = """
import asyncio, json, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from testbed.node import material as M
from testbed.node.bootstrap.profile import BootstrapContext, FactoryIdentity, TrustCenterRef
from testbed.node.thing.profiles import profile_for
from testbed.pki import load_device, make_csr
root = Path("/etc/testbed")
device = load_device(root / M.IDENTITY)
ctx = BootstrapContext(
    node="impersonator",
    identity=FactoryIdentity(
        private_key=M.path(M.DEVICE_KEY_PEM, root),
        idevid=M.path(M.IDEVID_DER, root),
        ccs=M.path(M.DEVICE_CCS, root),
    ),
    trust_center=TrustCenterRef(uri=sys.argv[1], ccs=M.path(M.TRUST_CENTER_CCS, root)),
    csr_der=make_csr(device).public_bytes(serialization.Encoding.DER),
    timeout_s=30,
)
report = {"name": sys.argv[2], "device_class": "luminaire"}
result = asyncio.run(profile_for("edhoc-oscore", report).bootstrap(ctx))
print(json.dumps({"outcome": result.outcome.value, "refusal": result.refusal,
                  "detail": result.detail}))
"""


def test_a_thing_reporting_another_things_name_does_not_take_its_place(
    building: Building,
) -> None:
    """From inside thermostat-01 (enrolled in hvac), with its own factory key: enroll again at
    its trust center reporting the name lamp-01 (the lighting contractor's lamp)."""
    victim, liar = "lamp-01", "thermostat-01"
    wait_for(lambda: building.listed().get(victim, {}).get("domain") == "lighting", 60, victim)
    uri = inventory.inventory_for_run(building.backend, building.run).vars[
        "testbed_trust_center_uris"
    ]["hvac"]
    result = building.backend.exec(building.run, liar, ["python3", "-c", IMPERSONATE, uri, victim])
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert (answer["outcome"], answer["refusal"]) == ("failure", "name-taken"), answer
    refusals = sql(
        building.backend,
        building.run,
        "tc-hvac",
        f"SELECT reason FROM refusals WHERE serial = '{building.serials[liar]}'",
    )
    assert ["name-taken"] in refusals
    # The lamp is still the lighting contractor's, under its own serial, and still read.
    listed = building.listed()
    assert (listed[victim]["domain"], listed[victim]["serial"]) == (
        "lighting",
        building.serials[victim],
    )
    assert building.devices("tc-hvac")[building.serials[liar]]["name"] == liar
    assert building.readable(victim) and building.readable(liar)


LIE_ABOUT_OWNER = """
import json, os, shutil, sys, time
from pathlib import Path
from testbed.node import material as M
state = Path("/var/lib/testbed")
owner = state / "owner"
owner.mkdir(exist_ok=True)
shutil.copy(M.path(M.TRUST_CENTER_CCS, Path("/etc/testbed")), owner / "trust-center.ccs.cbor")
record = {"schema": 1, "domain": sys.argv[1], "trust_center_uri": sys.argv[2],
          "ccs": "owner/trust-center.ccs.cbor", "transferred_at": time.time()}
(state / "owner.json").write_text(json.dumps(record))
st = state.stat()
for path in (owner, owner / "trust-center.ccs.cbor", state / "owner.json"):
    os.chown(path, st.st_uid, st.st_gid)
"""


def test_a_thing_lying_about_its_owner_is_still_revoked_at_its_real_owner(
    building: Building, docker_client: Any
) -> None:
    """co2-01 (owned by hvac) is compromised: it rewrites its owner record to say lighting
    (keeping its hvac keys and trust center) and restarts. Recommissioned to lighting, it must
    still be revoked at hvac (the owner of record) and wiped."""
    liar = "co2-01"
    serial = building.serials[liar]
    wait_for(lambda: building.lifecycle(liar) == "operational", 60, f"{liar} operational")
    assert building.devices("tc-hvac")[serial]["state"] == "enrolled"
    uri = inventory.inventory_for_run(building.backend, building.run).vars[
        "testbed_trust_center_uris"
    ]["hvac"]
    lie = building.backend.exec(
        building.run, liar, ["python3", "-c", LIE_ABOUT_OWNER, "lighting", uri]
    )
    assert lie.exit_code == 0, lie.output
    container = docker_client.containers.get(f"tb-{building.run}-{liar}")
    container.restart(timeout=10)
    wait_for(lambda: building.lifecycle(liar) == "operational", 60, f"{liar} back")
    assert building.status(liar)["domain"] == "lighting"  # the lie
    # The cross-domain policy keeps co2-01 away from tc-lighting, so its bootstrap there
    # fails at the end of the phase (after a short timeout); what matters is what came before.
    building.phase(
        "recommission", limit=liar, extravars={"to_domain": "lighting", "commission_timeout": 20}
    )
    assert building.devices("tc-hvac")[serial]["state"] == "revoked"
    certificates = sql(
        building.backend,
        building.run,
        "tc-hvac",
        f"SELECT revoked_at IS NOT NULL FROM certificates WHERE thing = '{serial}'",
    )
    assert certificates and all(revoked for (revoked,) in certificates)
    assert building.status(liar)["ldevid_serial"] is None  # wiped
    wait_for(lambda: liar not in building.listed(), 30, f"the backend to drop {liar}")
