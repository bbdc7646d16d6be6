"""The simulated world a thing senses and acts on, one small model per device class.

Values vary slowly and plausibly (a room warms toward its setpoint, humidity drifts over the
hour) so that dashboards and observe notifications show something alive, and they differ from
thing to thing (a phase derived from the node name) so that a mixed-up reading is noticed.

``read`` returns a value in its wire shape (see ``catalog``); ``write`` validates and applies a
decoded payload, raising ``Invalid`` (wrong type: 4.00) or ``OutOfRange`` (4.22).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


class Invalid(ValueError):
    """The value has the wrong shape for the resource."""


class OutOfRange(ValueError):
    """The value has the right shape but is outside what the device accepts."""


SETPOINT_RANGE = (5.0, 35.0)
LEVEL_RANGE = (0, 100)


def _phase(seed: str, salt: str) -> float:
    digest = hashlib.sha256(f"{seed}/{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 2 * math.pi


def _wobble(t: float, amplitude: float, period_s: float, phase: float) -> float:
    return amplitude * math.sin(2 * math.pi * t / period_s + phase)


class Device:
    """Base: no resources. Subclasses implement read/write for their resource names."""

    def __init__(self, seed: str, clock: Clock = time.time) -> None:
        self.seed = seed
        self.clock = clock

    def read(self, name: str) -> Any:
        raise KeyError(name)

    def write(self, name: str, value: Any) -> Any:
        raise KeyError(name)

    def stimulate(self, name: str, value: Any) -> Any:
        """Change the physical world behind a resource (experiments: smoke, a warm day)."""
        return self.write(name, value)

    def significant(self, name: str, before: Any, after: Any) -> bool:
        """Is the change worth an observe notification?"""
        return bool(before != after)


def _number(value: Any) -> float:
    # CBOR true is not a temperature, even though Python's bool is an int.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("expected a finite number")
    return float(value)


class Thermostat(Device):
    TAU_S = 600.0  # the room approaches the setpoint with this time constant

    def __init__(self, seed: str, clock: Clock = time.time) -> None:
        super().__init__(seed, clock)
        self.setpoint = 21.0
        self._room = self.setpoint - 1.5 + _phase(seed, "start") / (2 * math.pi)
        self._at = clock()

    def _temperature(self) -> float:
        now = self.clock()
        self._room += (self.setpoint - self._room) * (1 - math.exp(-(now - self._at) / self.TAU_S))
        self._at = now
        return round(self._room + _wobble(now, 0.2, 900, _phase(self.seed, "room")), 2)

    def read(self, name: str) -> Any:
        if name == "temperature":
            return self._temperature()
        if name == "setpoint":
            return self.setpoint
        raise KeyError(name)

    def write(self, name: str, value: Any) -> Any:
        if name == "temperature":  # stimulate only: the room itself gets warmer or colder
            self._temperature()
            self._room = _number(value)
            return self._temperature()
        if name != "setpoint":
            raise KeyError(name)
        setpoint = _number(value)
        low, high = SETPOINT_RANGE
        if not low <= setpoint <= high:
            raise OutOfRange(f"setpoint must be within {low:g}..{high:g} degrees Celsius")
        self._temperature()  # settle the room up to now under the old setpoint
        self.setpoint = setpoint
        return setpoint

    def significant(self, name: str, before: Any, after: Any) -> bool:
        if name == "temperature" and before is not None:
            return bool(abs(after - before) >= 0.1)
        return bool(before != after)


class Luminaire(Device):
    def __init__(self, seed: str, clock: Clock = time.time) -> None:
        super().__init__(seed, clock)
        self.on = False
        self.level = 100

    def read(self, name: str) -> Any:
        if name != "light":
            raise KeyError(name)
        return {"on": self.on, "level": self.level}

    def write(self, name: str, value: Any) -> Any:
        if name != "light":
            raise KeyError(name)
        if not isinstance(value, dict) or not value or set(value) - {"on", "level"}:
            raise Invalid('expected a map with "on" (bool) and/or "level" (int)')
        on, level = value.get("on", self.on), value.get("level", self.level)
        if not isinstance(on, bool):
            raise Invalid('"on" must be a bool')
        if isinstance(level, bool) or not isinstance(level, int):
            raise Invalid('"level" must be an integer')
        low, high = LEVEL_RANGE
        if not low <= level <= high:
            raise OutOfRange(f'"level" must be within {low}..{high}')
        self.on, self.level = on, level
        return self.read(name)


class SmokeDetector(Device):
    def __init__(self, seed: str, clock: Clock = time.time) -> None:
        super().__init__(seed, clock)
        self.alarm = False

    def read(self, name: str) -> Any:
        if name != "alarm":
            raise KeyError(name)
        return self.alarm

    def write(self, name: str, value: Any) -> Any:
        # Not writable over CoAP (catalog: GET only); only the world (stimulate) sets it.
        if name != "alarm":
            raise KeyError(name)
        if not isinstance(value, bool):
            raise Invalid("expected a bool")
        self.alarm = value
        return value


class Sensor(Device):
    def read(self, name: str) -> Any:
        if name != "value":
            raise KeyError(name)
        t = self.clock()
        humidity = (
            45
            + _wobble(t, 5.0, 3600, _phase(self.seed, "slow"))
            + _wobble(t, 0.8, 420, _phase(self.seed, "fast"))
        )
        return round(humidity, 1)


class Actuator(Device):
    def __init__(self, seed: str, clock: Clock = time.time) -> None:
        super().__init__(seed, clock)
        self.state = False

    def read(self, name: str) -> Any:
        if name != "state":
            raise KeyError(name)
        return self.state

    def write(self, name: str, value: Any) -> Any:
        if name != "state":
            raise KeyError(name)
        if not isinstance(value, bool):
            raise Invalid("expected a bool")
        self.state = value
        return value


MODELS: dict[str, type[Device]] = {
    "thermostat": Thermostat,
    "luminaire": Luminaire,
    "smoke-detector": SmokeDetector,
    "sensor": Sensor,
    "actuator": Actuator,
}


def device_for(device_class: str, seed: str, clock: Clock = time.time) -> Device:
    return MODELS[device_class](seed, clock)
