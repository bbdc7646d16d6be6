"""A serial line to a radio board (a USB tty, or a pseudo-terminal in tests), as the Spinel
dongle (dongle.py) and the SLIP uplink (slipuplink.py) both use it: opened raw and
non-blocking for the event loop, read in whatever pieces arrive, and gone when the board is
unplugged or the pseudo-terminal's other end closes (EIO or end of file)."""

from __future__ import annotations

import contextlib
import errno
import os
import termios
import tty

READ_SIZE = 4096


class LineGone(Exception):
    """The line ended: the board was unplugged or the other end closed (the reason)."""


def open_raw(path: str, baudrate: int | None = None) -> int:
    """The device opened for reading and writing, raw (the protocols are binary: no echo, no
    line editing, no CR/LF mapping), non-blocking; ``baudrate`` (a termios B* constant) for a
    real UART (a pseudo-terminal or USB CDC ignores it). OSError naming the path."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot open {path}: {exc.strerror}") from exc
    with contextlib.suppress(termios.error):
        tty.setraw(fd)
        if baudrate is not None:
            attrs = termios.tcgetattr(fd)
            attrs[4] = attrs[5] = baudrate
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd


def read_available(fd: int, path: str) -> bytes:
    """What the line holds now (b"" when nothing after all); LineGone when it ended."""
    try:
        data = os.read(fd, READ_SIZE)
    except BlockingIOError:
        return b""
    except OSError as exc:  # EIO: the other end of the pseudo-terminal went away
        raise LineGone(f"{path}: {exc.strerror or errno.errorcode.get(exc.errno or 0)}") from exc
    if not data:
        raise LineGone(f"{path}: end of file")
    return data
