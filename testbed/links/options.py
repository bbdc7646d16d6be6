"""``testbed link set`` options -> the node's parameters, with errors that name the option.

Values take the topology file's units (testbed.topology.units): "20%" or 0.2, "30ms",
"250kbit"; the node's actions take plain SI numbers (seconds, fractions, bit/s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.contracts.impairment import LINK_NAMES, Impairment, ImpairmentError
from testbed.errors import LinkOptionError as LinkOptionError  # re-exported
from testbed.topology import units

PAN_PREFIX = "pan-"
# What a PAN link (the radio medium) can change live; the rest is for IP links.
PAN_OPTIONS = frozenset({"loss", "gilbert_elliott"})


@dataclass(frozen=True)
class LinkName:
    kind: str  # "ip" | "pan"
    name: str  # backbone | internet | the PAN's name

    @property
    def text(self) -> str:
        return self.name if self.kind == "ip" else f"{PAN_PREFIX}{self.name}"


def parse_link(text: str) -> LinkName:
    if text in LINK_NAMES:
        return LinkName("ip", text)
    if text.startswith(PAN_PREFIX) and len(text) > len(PAN_PREFIX):
        return LinkName("pan", text.removeprefix(PAN_PREFIX))
    raise LinkOptionError(
        f"unknown link {text!r}",
        "links are `internet`, `backbone` and `pan-<name>` (see `testbed link show`)",
    )


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _convert(option: str, value: str, parse: Any) -> Any:
    try:
        return parse(value.strip() if isinstance(value, str) else value)
    except ValueError as exc:
        raise LinkOptionError(f"{_flag(option)}: {exc}", _EXAMPLES[option]) from None


_EXAMPLES = {
    "loss": "e.g. --loss 20% (or 0.2)",
    "delay": "e.g. --delay 30ms",
    "jitter": "e.g. --jitter 5ms (with --delay)",
    "rate": "e.g. --rate 250kbit",
    "duplicate": "e.g. --duplicate 1%",
    "reorder": "e.g. --reorder 5% (with --delay)",
    "corrupt": "e.g. --corrupt 0.1%",
    "gilbert_elliott": "--gilbert-elliott p,r[,loss_good[,loss_bad]], e.g. 1%,30%,0%,100%",
}


def _probability(text: str) -> float:
    """A percentage ("20%") or a fraction typed on a command line ("0.2"), as a topology."""
    return units.probability(text)


def gilbert_elliott(text: str) -> dict[str, float]:
    parts = [p for p in text.split(",")]
    if not 2 <= len(parts) <= 4:
        raise LinkOptionError(
            f"--gilbert-elliott: expected 2 to 4 comma-separated values, got {len(parts)}",
            _EXAMPLES["gilbert_elliott"],
        )
    names = ("p", "r", "loss_good", "loss_bad")
    out = {"loss_good": 0.0, "loss_bad": 1.0}
    for name, part in zip(names, parts, strict=False):
        try:
            out[name] = _probability(part.strip())
        except ValueError as exc:
            raise LinkOptionError(
                f"--gilbert-elliott: {name}: {exc}", _EXAMPLES["gilbert_elliott"]
            ) from None
    return out


def parameters(given: dict[str, str | None]) -> dict[str, Any]:
    """Options as typed (None: not given) -> parameters in SI units."""
    out: dict[str, Any] = {}
    parsers: dict[str, Any] = {
        "loss": _probability,
        "duplicate": _probability,
        "reorder": _probability,
        "corrupt": _probability,
        "delay": units.duration,
        "jitter": units.duration,
        "rate": units.rate,
    }
    for option, value in given.items():
        if value is None:
            continue
        if option == "gilbert_elliott":
            out[option] = gilbert_elliott(value)
        else:
            out[option] = _convert(option, value, parsers[option])
    return out


def ip_impairment(params: dict[str, Any]) -> Impairment:
    """Checked here as the node will check it, so a bad combination never leaves the host."""
    try:
        return Impairment.from_dict(params)
    except ImpairmentError as exc:
        option = exc.option.split(".")[0]
        raise LinkOptionError(f"{_flag(option)}: {exc.reason}", _EXAMPLES.get(option, "")) from None


def pan_parameters(link: LinkName, params: dict[str, Any]) -> dict[str, Any]:
    other = sorted(set(params) - PAN_OPTIONS)
    if other:
        raise LinkOptionError(
            f"{link.text} is an 802.15.4 PAN: {', '.join(map(_flag, other))} "
            "apply to IP links (internet, backbone) only",
            "a PAN takes --loss and --gilbert-elliott (frame loss on the radio medium)",
        )
    if "loss" in params and "gilbert_elliott" in params:
        raise LinkOptionError(
            "--loss: give either --loss or --gilbert-elliott", _EXAMPLES["gilbert_elliott"]
        )
    return {
        "pan": link.name,
        "loss": params.get("loss", 0.0),
        **({"gilbert_elliott": params["gilbert_elliott"]} if "gilbert_elliott" in params else {}),
    }
