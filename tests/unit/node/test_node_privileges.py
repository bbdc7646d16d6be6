"""The node's own walls: it knows whose network namespace it is in, and gives up CAP_NET_ADMIN."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.node import capabilities, netns

ROOT = Path(__file__).resolve().parents[3]


def fake_proc(tmp_path: Path, core: list[str], same_as_pid1: bool) -> Path:
    proc = tmp_path / "proc"
    (proc / "sys" / "net" / "core").mkdir(parents=True)
    for name in core:
        (proc / "sys" / "net" / "core" / name).write_text("1000\n")
    for pid in ("self", "1"):
        (proc / pid / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "net").write_text("")
    if same_as_pid1:
        (proc / "1" / "ns" / "net").hardlink_to(proc / "self" / "ns" / "net")
    else:
        (proc / "1" / "ns" / "net").write_text("")
    return proc


def test_the_hosts_namespace_is_recognised_by_its_core_sysctls(tmp_path: Path) -> None:
    host = netns.check(fake_proc(tmp_path, ["somaxconn", "netdev_max_backlog"], False))
    assert not host.own and "netdev_max_backlog" in host.reason


def test_a_container_namespace_is_its_own(tmp_path: Path) -> None:
    assert netns.check(fake_proc(tmp_path, ["somaxconn"], False)).own


def test_sharing_pid_1s_namespace_is_not_own(tmp_path: Path) -> None:
    shared = netns.check(fake_proc(tmp_path, ["somaxconn"], True))
    assert not shared.own and "PID 1" in shared.reason


def test_unreadable_proc_is_a_refusal(tmp_path: Path) -> None:
    assert not netns.check(tmp_path / "nothing").own


def test_this_host_is_not_an_own_namespace() -> None:
    """The test suite runs on a host (or in its CI container's initial namespace)."""
    if not Path("/proc/sys/net/core/netdev_max_backlog").exists():
        pytest.skip("this test process is itself in a network namespace of its own")
    assert not netns.check().own


@pytest.mark.parametrize(
    ("role", "dropped"),
    [
        ("thing", {"CAP_NET_ADMIN", "CAP_NET_RAW"}),
        ("trust_center", {"CAP_NET_ADMIN", "CAP_NET_RAW"}),
        ("internet_host", {"CAP_NET_ADMIN", "CAP_NET_RAW"}),
        ("border_router", set()),
    ],
)
def test_what_each_role_gives_up(role: str, dropped: set[str]) -> None:
    assert {capabilities.NAMES[c] for c in capabilities.to_drop(role)} == dropped


def test_status_masks_are_read() -> None:
    status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000003000\n"
    assert capabilities.held(status) == {"CapInh": 0, "CapEff": 0x3000}


DROP_THEN_ROUTE = """
import subprocess, sys
from testbed.node import capabilities as c
c.drop(c.NETWORK)
assert not c.holders(c.NETWORK), c.holders(c.NETWORK)
done = subprocess.run(["ip", "-6", "route", "add", "unreachable", "fd00:dead::/64"],
                      capture_output=True, text=True)
print(done.returncode, done.stderr.strip())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN to give up)")
def test_after_the_drop_no_child_can_change_routes() -> None:
    """In a namespace of its own (unshare -n), so that nothing could touch this host."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8)")
    base = ["unshare", "-n", sys.executable, "-c"]
    control = subprocess.run(
        [*base, "import subprocess; print(subprocess.run(['ip', '-6', 'route', 'add', "
         "'unreachable', 'fd00:dead::/64']).returncode)"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if control.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {control.stderr.strip()}")
    assert control.stdout.strip() == "0"  # with the capability the same command works
    done = subprocess.run(
        [*base, DROP_THEN_ROUTE], capture_output=True, text=True, cwd=ROOT, check=True
    )
    code, _, error = done.stdout.strip().partition(" ")
    assert code != "0" and "Operation not permitted" in error


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN to give up)")
@pytest.mark.parametrize(("role", "permitted"), [("internet_host", False), ("border_router", True)])
def test_testbed_exec_runs_commands_with_the_roles_privileges(
    tmp_path: Path, role: str, permitted: bool
) -> None:
    """What `testbed exec` runs (testbed.node.confine): an attacker's `ip route add` fails."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8)")
    config = tmp_path / "node.json"
    config.write_text(
        json.dumps({"run": "r", "building": "b", "node": "n", "role": role, "interfaces": []})
    )
    script = (
        "import sys; from pathlib import Path; from testbed.node import confine; "
        f"sys.exit(confine.main(['--', 'ip', '-6', 'route', 'add', 'unreachable', "
        f"'fd00:dead::/64'], Path({str(config)!r})))"
    )
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT
    )
    if "unshare failed" in done.stderr:
        pytest.skip(f"unshare -n is not permitted here: {done.stderr.strip()}")
    assert (done.returncode == 0) is permitted, done.stderr
    if not permitted:
        assert "Operation not permitted" in done.stderr
