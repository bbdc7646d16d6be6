"""Measures for comparing protocols: a bootstrap's figures per profile, and one command sent to
several things as a group request or as unicast writes.

Per bootstrap (from each thing's own report, ``bootstrap`` in its state; both directions,
retransmissions included): bytes and datagrams, the handshake's share of them (EDHOC messages,
DTLS handshake flights; EDHOC message_3 rides on the first OSCORE request and is counted
whole), round trips (answers the thing waited for: datagrams received that were not
retransmissions, as bench/profiles.py counts them), retransmitted datagrams, the handshake as
first sent (``handshake_bytes_first``: without retransmitted copies), radio frames and
the size of each protocol message as first sent (``msg.NAME``, for comparison with the figures
the specifications give).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from testbed.errors import TestbedError
from testbed.scenario import schema

if TYPE_CHECKING:
    from testbed.scenario.steps import Context

# Message names (testbed.node.coap.classify, testbed.node.dtls.classify) of the handshake.
HANDSHAKE_PREFIXES = ("edhoc_message_", "dtls_client_", "dtls_hello_", "dtls_server_")
POLL_S = 0.2  # how often a command's targets are asked whether they acted on it
SETTLE_S = 1.0  # after a command was sent: its last frames are on the air, the hub counted them


def figures(report: dict[str, Any]) -> dict[str, float]:
    """One bootstrap report's figures (the thing's ``bootstrap`` state)."""
    messages = report.get("messages") or []
    handshake = [m for m in messages if str(m.get("message", "")).startswith(HANDSHAKE_PREFIXES)]
    out = {
        "bytes": float(sum(m.get("bytes", 0) for m in messages)),
        "datagrams": float(sum(m.get("datagrams", 0) for m in messages)),
        "handshake_bytes": float(sum(m.get("bytes", 0) for m in handshake)),
        "handshake_datagrams": float(sum(m.get("datagrams", 0) for m in handshake)),
        # As first sent, without retransmitted copies (a copy has its original's size): what the
        # published figures count. A DTLS flight retransmitted by its timer on a loaded machine
        # is counted above but not here.
        "handshake_bytes_first": float(sum(_first_bytes(m) for m in handshake)),
        "handshake_datagrams_first": float(
            sum(m.get("datagrams", 0) - m.get("retransmissions", 0) for m in handshake)
        ),
        "retransmissions": float(sum(m.get("retransmissions", 0) for m in messages)),
        "round_trips": float(
            sum(
                m.get("datagrams", 0) - m.get("retransmissions", 0)
                for m in messages
                if m.get("direction") == "received"
            )
        ),
    }
    if report.get("duration_s") is not None:
        out["duration_s"] = float(report["duration_s"])
    radio = report.get("radio") or {}
    if radio:
        out["frames"] = float(radio.get("frames_sent", 0)) + float(radio.get("frames_received", 0))
        out["frames_sent"] = float(radio.get("frames_sent", 0))
    for m in messages:
        if m.get("message_bytes") is not None:
            out[f"msg.{measure_part(str(m['message']))}"] = float(m["message_bytes"])
    return out


def _first_bytes(message: dict[str, Any]) -> float:
    datagrams = int(message.get("datagrams", 0))
    if datagrams == 0:
        return 0.0
    first = datagrams - int(message.get("retransmissions", 0))
    return round(float(message.get("bytes", 0)) * first / datagrams, 1)


def measure_part(text: str) -> str:
    """A message name as a part of a measure name (``edhoc_message_3+oscore_request`` has a
    character measure names do not take)."""
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "x"


def per_profile(
    states: dict[str, dict[str, Any]], profiles: dict[str, str]
) -> dict[str, dict[str, float | None]]:
    """Per profile: success rate over its things and the mean of each figure over its
    operational ones. ``states``: thing -> its state; ``profiles``: thing -> planned profile."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for thing, state in sorted(states.items()):
        report = state.get("bootstrap") or {}
        profile = profiles.get(thing) or report.get("profile") or "unknown"
        grouped.setdefault(str(profile), []).append(state)
    out: dict[str, dict[str, float | None]] = {}
    for profile, group in sorted(grouped.items()):
        ok = [s for s in group if s.get("lifecycle") == "operational"]
        row: dict[str, float | None] = {
            "things": float(len(group)),
            "success_rate": len(ok) / len(group),
        }
        row.update(_means(figures(s.get("bootstrap") or {}) for s in ok))
        out[profile] = row
    return out


def _means(rows: Iterable[dict[str, float]]) -> dict[str, float | None]:
    values: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            values.setdefault(key, []).append(value)
    return {k: round(statistics.fmean(v), 3) for k, v in sorted(values.items())}


def totals(states: Iterable[dict[str, Any]]) -> dict[str, float | None]:
    """Means over operational things of the figures the plain bootstrap step does not record."""
    keep = (
        "datagrams",
        "handshake_bytes",
        "handshake_datagrams",
        "handshake_bytes_first",
        "handshake_datagrams_first",
        "retransmissions",
        "round_trips",
    )
    rows = [
        figures(s.get("bootstrap") or {}) for s in states if s.get("lifecycle") == "operational"
    ]
    means = _means({k: r[k] for k in keep if k in r} for r in rows)
    return {k: means.get(k) for k in keep}


# ------------------------------------------------------------------ commands to several things


def handled(state: dict[str, Any] | None, resource: str, method: str) -> int:
    """How many METHOD requests to /RESOURCE a thing has handled (its own count)."""
    counts = (((state or {}).get("requests") or {}).get("handled") or {}).get(f"/{resource}")
    by_method = (counts or {}).get(method) or {}
    return int(sum(by_method.values())) if isinstance(by_method, dict) else int(by_method)


def command(ctx: Context, args: schema.Command) -> None:
    """Send one command to ``things`` (one group request, or one unicast write per thing, all at
    once) and measure: NAME.reached (fraction of them that acted on it), NAME.time_to_all_s
    (until the last one had, from the things' own request counts read over the management
    network: no PAN traffic), the PAN's medium counters meanwhile (NAME.transmissions,
    .airtime_ms, .frames_received, .acks: the command's cost plus whatever else ran then),
    NAME.outsiders_acted (of ``outsiders``: things that must not act on it); for a group
    request NAME.bytes (its datagram), for unicast NAME.coap_latency_max_s (the slowest
    write's request-to-response time at the backend). time_to_all_s is seen from the host, so
    it includes the control path (a call into the backend's container) for both modes."""
    tb, prefix = ctx.testbed, args.name
    watched = [*args.things, *args.outsiders]
    before = {t: handled(tb.state(t), args.resource, "PUT") for t in watched}
    medium_before = tb.medium(args.pan)
    started = time.monotonic()
    failures: list[str] = []
    if args.mode == "group":
        sent = tb.group_send(args.pan, args.resource, args.value)
        ctx.record(f"{prefix}.bytes", float(sent.get("bytes", 0)), "B")
        ctx.record(f"{prefix}.generation", float(sent.get("generation", 0)))
    else:
        host = tb.backend_host()

        latencies: list[float] = []

        def write(thing: str) -> str:
            params = {"thing": thing, "resource": args.resource, "payload": args.value}
            try:
                answer = tb.action(host, "write", params, timeout=args.timeout + 10)
            except TestbedError as exc:
                return f"{thing}: {exc.message}"
            if answer.get("latency_s") is not None:
                latencies.append(float(answer["latency_s"]))
            return "" if answer.get("outcome") == "ok" else f"{thing}: {answer.get('outcome')}"

        with ThreadPoolExecutor(max_workers=min(8, len(args.things))) as pool:
            failures = [f for f in pool.map(write, args.things) if f]
        # the backend's own request-to-response time of the slowest write (CoAP, no control path)
        ctx.record(f"{prefix}.coap_latency_max_s", max(latencies) if latencies else None, "s")
    # The command's frames are on the air once the send returned (a group request is NON and
    # unanswered; each write had its response): the medium is read then, not after the wait
    # below, so that fewer of the backend's periodic reads fall into the window.
    time.sleep(SETTLE_S)
    medium_after = tb.medium(args.pan)
    reached, took = _wait_acted(ctx, args, before, started)
    ctx.record(f"{prefix}.reached", len(reached) / len(args.things))
    ctx.record(f"{prefix}.time_to_all_s", took, "s")
    outsiders = [
        t for t in args.outsiders if handled(tb.state(t), args.resource, "PUT") > before[t]
    ]
    ctx.record(f"{prefix}.outsiders_acted", float(len(outsiders)))
    if medium_before is not None and medium_after is not None:
        for key, unit, name in (
            ("transmissions", "frames", "transmissions"),
            ("busy_ms", "ms", "airtime_ms"),
            ("frames_received", "frames", "frames_received"),
            ("acks", "frames", "acks"),
        ):
            delta = medium_after[key] - medium_before[key]
            ctx.record(f"{prefix}.{name}", round(delta, 3), unit)
    missing = sorted(set(args.things) - reached)
    if missing or failures or outsiders:
        ctx.point.log.append(
            f"  {prefix}: not acted on by {', '.join(missing) or 'none'}; "
            f"write failures: {'; '.join(failures) or 'none'}; "
            f"outsiders that acted: {', '.join(outsiders) or 'none'}"
        )


def _wait_acted(
    ctx: Context, args: schema.Command, before: dict[str, int], started: float
) -> tuple[set[str], float | None]:
    """The things that acted on the command, and the seconds until the last one had (None when
    not all did within the timeout)."""
    reached: set[str] = set()
    deadline = started + args.timeout
    while True:
        for thing in sorted(set(args.things) - reached):
            if handled(ctx.testbed.state(thing), args.resource, "PUT") > before[thing]:
                reached.add(thing)
        if reached == set(args.things):
            return reached, round(time.monotonic() - started, 3)
        if time.monotonic() >= deadline:
            return reached, None
        time.sleep(POLL_S)
