"""`testbed link` option parsing: values in the topology's units, errors that name the option."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testbed.links import options
from testbed.links.options import LinkName, LinkOptionError


def test_link_names() -> None:
    assert options.parse_link("internet") == LinkName("ip", "internet")
    assert options.parse_link("backbone") == LinkName("ip", "backbone")
    assert options.parse_link("pan-floor1") == LinkName("pan", "floor1")
    for bad in ("wan", "pan-", "floor1"):
        with pytest.raises(LinkOptionError, match="unknown link"):
            options.parse_link(bad)


def test_values_convert_to_si_units() -> None:
    given = {
        "loss": "20%", "delay": "30ms", "jitter": "5ms", "rate": "250kbit",
        "duplicate": "1%", "reorder": "0.05", "corrupt": "0.1%", "gilbert_elliott": None,
    }  # fmt: skip
    assert options.parameters(given) == {
        "loss": 0.2,
        "delay": 0.03,
        "jitter": 0.005,
        "rate": 250_000,
        "duplicate": 0.01,
        "reorder": 0.05,
        "corrupt": pytest.approx(0.001),
    }
    imp = options.ip_impairment(options.parameters({"delay": "30ms", "reorder": "5%"}))
    assert imp.describe() == "delay 30ms, reorder 5%"


def test_gilbert_elliott_values() -> None:
    assert options.gilbert_elliott("1%,30%") == {
        "p": 0.01, "r": 0.3, "loss_good": 0.0, "loss_bad": 1.0,
    }  # fmt: skip
    assert options.gilbert_elliott("0.01, 0.3, 0%, 80%")["loss_bad"] == 0.8
    with pytest.raises(LinkOptionError, match="--gilbert-elliott: expected 2 to 4"):
        options.gilbert_elliott("1%")
    with pytest.raises(LinkOptionError, match="--gilbert-elliott: r"):
        options.gilbert_elliott("1%,x")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"loss": "120%"}, "--loss"),
        ({"loss": "lots"}, "--loss"),
        ({"delay": "30"}, "--delay"),  # a unit is required on the command line
        ({"delay": "30 parsecs"}, "--delay"),
        ({"rate": "fast"}, "--rate"),
        ({"rate": "0kbit"}, "--rate"),
        ({"duplicate": "-1%"}, "--duplicate"),
        ({"corrupt": "2"}, "--corrupt"),
    ],
)
def test_bad_values_name_the_option(given: dict[str, str | None], message: str) -> None:
    with pytest.raises(LinkOptionError) as info:
        options.parameters(given)
    assert info.value.message.startswith(message)
    assert info.value.hint


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"jitter": "5ms"}, "--jitter"),
        ({"delay": "10ms", "jitter": "20ms"}, "--jitter"),
        ({"reorder": "5%"}, "--reorder"),
        ({"loss": "5%", "gilbert_elliott": "1%,30%"}, "--loss"),
        ({"delay": "90s"}, "--delay"),
    ],
)
def test_bad_combinations_name_the_option(given: dict[str, str | None], message: str) -> None:
    with pytest.raises(LinkOptionError) as info:
        options.ip_impairment(options.parameters(given))
    assert info.value.message.startswith(message)


def test_pan_links_take_frame_loss_only() -> None:
    pan = LinkName("pan", "floor1")
    assert options.pan_parameters(pan, {"loss": 0.2}) == {"pan": "floor1", "loss": 0.2}
    ge = {"p": 0.1, "r": 0.5, "loss_good": 0.0, "loss_bad": 1.0}
    assert options.pan_parameters(pan, {"gilbert_elliott": ge})["gilbert_elliott"] == ge
    with pytest.raises(LinkOptionError, match="--delay, --rate apply to IP links"):
        options.pan_parameters(pan, {"delay": 0.01, "rate": 1000, "loss": 0.1})


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed.cli.app", *args],
        capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": ""},
    )  # fmt: skip


def test_the_cli_refuses_bad_values_before_it_looks_for_a_run() -> None:
    proc = cli("link", "set", "internet", "--loss", "120%")
    assert proc.returncode == 2
    assert "--loss" in proc.stderr and "outside 0%..100%" in proc.stderr
    proc = cli("link", "set", "pan-floor1", "--delay", "30ms")
    assert proc.returncode == 2 and "apply to IP links" in proc.stderr
    proc = cli("link", "reset", "wan")
    assert proc.returncode == 2 and "unknown link 'wan'" in proc.stderr
    proc = cli("capture", "internet", "-o", "x.pcap")
    assert proc.returncode == 2 and "IP link" in proc.stderr
