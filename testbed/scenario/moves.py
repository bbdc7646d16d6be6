"""The scenario step ``move``: a thing to another radio PAN through the use case the CLI's
`testbed move` calls, with what the move cost recorded as measures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from testbed.errors import StepFailed, TestbedError
from testbed.scenario import schema

if TYPE_CHECKING:
    from testbed.scenario.steps import Context


def move(ctx: Context, args: schema.Move) -> None:
    name = args.name
    try:
        result = ctx.testbed.move(
            args.thing, args.pan, reregister=args.reregister, wait_read=args.wait_read
        )
    except TestbedError as exc:
        ctx.record(f"{name}.ok", 0.0)
        ctx.point.log.append(f"  move {args.thing} -> {args.pan} failed: {exc.message}")
        if args.must_succeed:
            raise StepFailed(f"move {args.thing} -> {args.pan}: {exc.message}", exc.hint) from exc
        return
    ctx.record(f"{name}.ok", 1.0)
    ctx.record(f"{name}.radio_s", result.timings.get("radio"), "s")
    ctx.record(f"{name}.read_again_s", result.timings.get("read_again"), "s")
    ctx.record(f"{name}.handshakes", float(result.handshakes))
    cost = result.bootstrap or {}
    ctx.record(f"{name}.bytes", cost.get("bytes"), "B")
    ctx.record(f"{name}.datagrams", cost.get("datagrams"), "datagrams")
    state = ctx.testbed.state(args.thing) or {}
    radio = (state.get("bootstrap") or {}).get("radio") or {}
    frames = radio.get("frames_sent") if args.reregister else None
    ctx.record(f"{name}.frames", None if frames is None else float(frames), "frames")
    ctx.point.log.append(
        f"  {args.thing} ({result.profile}) {result.old_pan} -> {result.pan}: "
        f"{result.old_address} -> {result.address}, {result.handshakes} handshake(s), "
        f"{cost.get('bytes')} B, timings {result.timings}"
    )
