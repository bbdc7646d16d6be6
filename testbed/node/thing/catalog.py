"""Device classes, the resources each one serves, and how their payloads look.

Shared by the thing (which serves them) and the backend (which reads every GET resource of a
thing's class). Payloads are CBOR (content-format 60), the same encoding the trust center API
uses, encoded canonically so that a float takes the shortest form that holds it exactly:

    thermostat      /temperature  GET, observe   float, degrees Celsius (2 decimals)
                    /setpoint     GET, PUT       float or int, degrees Celsius, 5..35
    luminaire       /light        GET, PUT       map {"on": bool, "level": int 0..100}; a PUT
                                                 may carry either key or both
    smoke-detector  /alarm        GET, observe   bool, true while smoke is detected
    sensor          /value        GET            float (relative humidity, percent)
    actuator        /state        GET, PUT       bool (on/off)

CBOR rather than plain text: the values are typed (a setpoint, a light with two fields), the
enrollment API is CBOR already, and cbor-diag/tshark show them readably on the wire.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

CF_CBOR = 60


@dataclass(frozen=True)
class ResourceSpec:
    name: str  # "temperature"; the Uri-Path is the single segment
    methods: tuple[str, ...]  # CoAP method names: "GET", "PUT"
    observable: bool = False

    @property
    def path(self) -> str:
        return f"/{self.name}"


DEVICE_CLASSES: Mapping[str, tuple[ResourceSpec, ...]] = {
    "thermostat": (
        ResourceSpec("temperature", ("GET",), observable=True),
        ResourceSpec("setpoint", ("GET", "PUT")),
    ),
    "luminaire": (ResourceSpec("light", ("GET", "PUT")),),
    "smoke-detector": (ResourceSpec("alarm", ("GET",), observable=True),),
    "sensor": (ResourceSpec("value", ("GET",)),),
    "actuator": (ResourceSpec("state", ("GET", "PUT")),),
}


def resources(device_class: str) -> tuple[ResourceSpec, ...]:
    """The resources of a device class; KeyError for an unknown class."""
    return DEVICE_CLASSES[device_class]


def readable(device_class: str) -> tuple[str, ...]:
    """Names of the resources a reader can GET (what the backend polls)."""
    return tuple(r.name for r in DEVICE_CLASSES.get(device_class, ()) if "GET" in r.methods)


def encode(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True)


def decode(payload: bytes) -> Any:
    """The CBOR value of a payload; ValueError unless it is exactly one CBOR item."""
    stream = io.BytesIO(payload)
    try:
        value = cbor2.load(stream)
    except (cbor2.CBORDecodeError, ValueError, EOFError) as exc:
        raise ValueError(f"payload is not CBOR: {exc}") from exc
    if stream.tell() != len(payload):
        # cbor2 stops after the first item; trailing bytes mean a confused or hostile sender.
        raise ValueError("payload has bytes after its CBOR item")
    return value
