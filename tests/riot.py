"""Driving the RIOT native node fixture (tests/fixtures/interop/riot/) through its shell.

The node is a separate process: commands go to its standard input, one per line; its standard
output is read by a thread into one growing transcript. Every wait is on a condition of that
transcript (a regular expression appearing after a mark), with a deadline: no fixed sleeps.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

FIXTURE = Path(__file__).parent / "fixtures" / "interop" / "riot" / "gnrc_leaf-native64-zep"
IFACE = 6  # RIOT native's only network interface
POLL = 0.5  # between repeated shell queries (ifconfig, nib): the node's own timers run meanwhile


class RiotNode:
    def __init__(
        self, local: tuple[str, int], medium: tuple[str, int], eui64: str | None = None
    ) -> None:
        # A fixed seed for its random(3) (RS jitter, sequence numbers): runs repeat.
        cmd = [str(FIXTURE), "-s", "1", "-z", f"[{local[0]}]:{local[1]},[{medium[0]}]:{medium[1]}"]
        if eui64 is not None:
            cmd += ["--eui64", eui64]
        # A session of its own: RIOT native forks a helper process that outlives a signal to
        # the main one; stop() ends the whole group.
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._text = ""
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="riot-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        # Chunks, not lines: the prompt "> " ends without a newline.
        for raw in iter(lambda: os.read(fd, 65536), b""):
            with self._cond:
                self._text += raw.decode(errors="replace")
                self._cond.notify_all()
        with self._cond:
            self._text += "\n<exited>\n"
            self._cond.notify_all()

    @property
    def transcript(self) -> str:
        with self._cond:
            return self._text

    def mark(self) -> int:
        with self._cond:
            return len(self._text)

    def wait(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        """The first match of ``pattern`` in the output after ``since``; AssertionError (with
        the tail of the transcript) when it has not appeared within ``timeout`` s."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._text, since)
                if m is not None:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or "<exited>" in self._text[since:]:
                    raise AssertionError(
                        f"RIOT: no {pattern!r} within {timeout:.0f} s; output:\n"
                        + self._text[since:][-3000:]
                    )
                self._cond.wait(left)

    def command(self, line: str, until: str = r"^> ", timeout: float = 10.0) -> str:
        """Run one shell command; returns its output up to the line matching ``until`` (by
        default the next prompt)."""
        assert self.proc.stdin is not None
        start = self.mark()
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        # The shell echoes the line: what follows the echo is this command's output (output
        # of an earlier command that arrives late stays before it).
        echo = self.wait(rf"{re.escape(line)}\r?$", timeout, start)
        m = self.wait(until, timeout, echo.end())
        with self._cond:
            return self._text[echo.start() : m.end()]

    def poll(self, line: str, pattern: str, timeout: float) -> re.Match[str]:
        """Repeat ``line`` until its output matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.command(line)
            m = re.search(pattern, out, re.M)
            if m is not None:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(f"RIOT: {line!r} never showed {pattern!r}; last:\n{out}")
            with self._cond:
                self._cond.wait(POLL)  # woken early by output; the loop re-asks anyway

    def join(self, channel: int, pan_id: int, ack_req: bool = False) -> None:
        """Tune to the PAN (RIOT starts on channel 26, PAN id 0x23). Without ``ack_req`` its
        frames ask for no MAC acknowledgement: RIOT native's MAC waits 864 us of wall-clock
        time for one, and when an ACK crosses its retransmission on a loaded host its network
        stack can stall for good (docs/engineering-notes.md); it still acknowledges frames
        sent to it, and the medium still models everyone else's ACKs and retries."""
        # The shell answers before the radio is initialised, and the radio's initialisation
        # sets the default channel again: a channel set before it ends is shown by `ifconfig`
        # but not used on the air (seen: every router solicitation refused by the medium as
        # wrong-channel, with `Channel: 15` shown). The interface's link-local address is not
        # a late enough sign; its first frame (the first router solicitation, lost on the
        # default channel; the next ones follow within 4 s) is.
        self.poll("ifconfig", r"inet6 addr: fe80::", 10)
        self.poll("ifconfig", r"Layer 2\s+RX packets \d+\s+bytes \d+\s+TX packets [1-9]", 15)
        lines = [f"ifconfig {IFACE} set chan {channel}", f"ifconfig {IFACE} set pan 0x{pan_id:04x}"]
        if not ack_req:
            lines.append(f"ifconfig {IFACE} -ack_req")
        for line in lines:
            out = self.command(line)
            assert "success" in out, out
        shown = self.command("ifconfig")
        assert f"Channel: {channel} " in shown and f"nid: 0x{pan_id:x} " in shown.lower(), shown

    def global_address(self, prefix: ipaddress.IPv6Network, timeout: float) -> str:
        """Its address in ``prefix``, once valid: RIOT marks it VAL only after the router
        accepted its registration (ARO status 0)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.command("ifconfig")
            for text in re.findall(r"inet6 addr: ([0-9a-f:]+)\s+scope: global\s+VAL", out):
                if ipaddress.IPv6Address(text) in prefix:
                    return str(text)
            if time.monotonic() >= deadline:
                raise AssertionError(f"RIOT: no valid address in {prefix}; last:\n{out}")
            with self._cond:
                self._cond.wait(POLL)

    def ping(
        self, address: str, count: int = 3, size: int | None = None, timeout: float = 30.0
    ) -> tuple[int, int, str]:
        """(transmitted, received, output) of ``ping``."""
        size_opt = f" -s {size}" if size is not None else ""
        out = self.command(f"ping -c {count}{size_opt} {address}", r"^> ", timeout)
        m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
        assert m is not None, out
        return int(m.group(1)), int(m.group(2)), out

    def stop(self) -> None:
        group = self.proc.pid  # its process group (start_new_session)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGINT)  # it ignores SIGTERM
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # the forked helper, and a main one that hung
        self.proc.wait(5)
        self._reader.join(5)

    def __enter__(self) -> RiotNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
