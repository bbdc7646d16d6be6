"""Structured logging: one JSON object per line on stdout.

Docker keeps a container's stdout, the host shows its tail when a node fails to come up, and
scenario reports parse it, so every line is self-describing:

    {"ts": "...Z", "level": "info", "node": "thermostat-01", "role": "thing",
     "event": "role.started", "fields": {...}}

Library loggers (aiocoap, asyncio) go through the same formatter, with their text under
``fields.message``. Field values pass through :func:`testbed.node.redact.scrub`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from testbed.node.redact import scrub

LOGGER_NAME = "testbed.node"


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str | None, role: str | None) -> None:
        super().__init__()
        self.node = node
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        fields: dict[str, Any]
        if event is None:
            # A library logger: keep its name as the event so lines stay filterable.
            event = record.name
            fields = {"message": record.getMessage()}
        else:
            fields = dict(getattr(record, "fields", {}))
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        line = {
            "ts": _iso_utc(record.created),
            "level": record.levelname.lower(),
            "node": self.node,
            "role": self.role,
            "event": event,
            "fields": scrub(fields),
        }
        return json.dumps(line, default=str, separators=(",", ":"))


def _iso_utc(created: float) -> str:
    ms = int((created % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


class EventLog:
    """``log.info("route.installed", prefix=..., via=...)``: an event name plus fields."""

    def __init__(self, logger: logging.Logger, **bound: Any) -> None:
        self._logger = logger
        self._bound = bound  # fields every line carries (a packed thing's name)

    def bind(self, **fields: Any) -> EventLog:
        """The same log, with ``fields`` on every line."""
        return EventLog(self._logger, **self._bound, **fields)

    def _emit(self, level: int, event: str, fields: dict[str, Any], exc: bool = False) -> None:
        if self._bound:
            fields = {**self._bound, **fields}
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"event": event, "fields": fields}, exc_info=exc)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the current exception's traceback attached."""
        self._emit(logging.ERROR, event, fields, exc=True)


def setup(
    node: str | None, role: str | None, level: str = "info", stream: TextIO | None = None
) -> EventLog:
    """Route all logging to ``stream`` (stdout) as JSON lines and return the node's logger."""
    handler = logging.StreamHandler(stream or sys.stdout)  # flushes after every record
    handler.setFormatter(JsonFormatter(node, role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return EventLog(logging.getLogger(LOGGER_NAME))
