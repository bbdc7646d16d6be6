"""The control actions of a station that moves between PANs (`testbed move`, host side in
testbed.usecases.mobility), on the radio attachment of the node:

    thing           radio-move       {pan, attribute}     the station leaves its medium for
                                                          another PAN's (a new port and ZEP client)
    border router   station-admit    {pan, name, short, carrier}
                                                          a thing moving onto one of its PANs
                    station-release  {pan, name}          a thing that left one of its PANs
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from testbed.contracts.radio import RadioPanConfig
from testbed.node.errors import ActionError

if TYPE_CHECKING:
    from testbed.node.radio.attach import RadioAttachment


async def radio_move(radio: RadioAttachment, params: dict[str, Any]) -> dict[str, Any]:
    """{pan, attribute}: the thing's station moves to PAN ``pan``, described by
    ``attribute`` (a radio-<pan> value, as the planner writes them)."""
    pan, raw = params.get("pan"), params.get("attribute")
    if not isinstance(pan, str) or not isinstance(raw, str):
        raise ActionError("radio-move needs pan and attribute", '{"pan": "floor2", ...}')
    try:
        config = RadioPanConfig.from_attribute(pan, raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise ActionError(f"radio-move: attribute of PAN {pan!r}: {exc}") from None
    ((old_name, current),) = radio.pans.items()
    if old_name == pan:
        raise ActionError(f"{radio.config.node} is on PAN {pan} already")
    await current.move(config)
    radio.pans = {pan: current}
    if radio.metered is not None:
        radio.metered.follow(current.port.counters)
    radio.log.info(
        "radio.moved", old_pan=old_name, pan=pan, address=config.address,
        short=f"0x{config.short:04x}", medium=f"[{config.medium}]:{config.port}",
    )  # fmt: skip
    return {"old_pan": old_name, **current.snapshot(), "pan": pan}


async def station_admit(radio: RadioAttachment, params: dict[str, Any]) -> dict[str, Any]:
    """{pan, name, short, carrier}: a thing moving onto this router's PAN."""
    pan = radio._pan(params)
    assert pan.hub is not None
    name, short, carrier = params.get("name"), params.get("short"), params.get("carrier")
    if not isinstance(name, str) or not isinstance(short, int) or not isinstance(carrier, str):
        raise ActionError(
            "station-admit needs name, short (int) and carrier (address)",
            '{"pan": "floor2", "name": "lamp-101", "short": 256, "carrier": "fd..::5"}',
        )
    try:
        pan.hub.admit_station(name, short, carrier)
    except KeyError as exc:
        raise ActionError(
            f"short address 0x{short:04x} on PAN {pan.config.pan} belongs to {exc.args[0]}",
            "choose a free one (link-show lists the medium's nodes)",
        ) from None
    radio.log.info("radio.station_admitted", pan=pan.config.pan, node=name, short=short)
    return {"pan": pan.config.pan, "name": name, "short": short, "carrier": carrier}


async def station_release(radio: RadioAttachment, params: dict[str, Any]) -> dict[str, Any]:
    """{pan, name}: a thing that left this router's PAN."""
    pan = radio._pan(params)
    assert pan.hub is not None
    name = params.get("name")
    if not isinstance(name, str):
        raise ActionError("station-release needs name", '{"pan": "floor1", "name": "x"}')
    released = pan.hub.release_station(name)
    radio.log.info("radio.station_released", pan=pan.config.pan, node=name, known=released)
    return {"pan": pan.config.pan, "name": name, "released": released}
