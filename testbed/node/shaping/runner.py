"""Running ``tc``/``ip``/``nft`` for the shaping code, or recording what would run.

Both implementations issue their commands through a ``Runner`` so that the exact command lines
the node uses can be replayed elsewhere: the QEMU test (tests/vm) records them on the host and
runs them inside a VM whose kernel has netem, and the unit tests compare them with tc syntax.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

COMMAND_TIMEOUT = 10.0


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0


class Runner(Protocol):
    async def __call__(self, cmd: Sequence[str], stdin: str | None = None) -> Result: ...


async def run(cmd: Sequence[str], stdin: str | None = None) -> Result:
    """The real runner: a subprocess with a deadline; a missing binary is exit code 127."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return Result(127, "", f"{cmd[0]}: not found")
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), COMMAND_TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return Result(-1, "", f"timed out after {COMMAND_TIMEOUT} s")
    return Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


@dataclass
class Recorder:
    """A Runner that only records (and answers from ``answer``, default: success)."""

    commands: list[tuple[list[str], str | None]] = field(default_factory=list)
    answer: Callable[[list[str]], Result] = lambda cmd: Result(0, "", "")

    async def __call__(self, cmd: Sequence[str], stdin: str | None = None) -> Result:
        self.commands.append((list(cmd), stdin))
        return self.answer(list(cmd))

    @property
    def lines(self) -> list[list[str]]:
        return [cmd for cmd, _ in self.commands]
