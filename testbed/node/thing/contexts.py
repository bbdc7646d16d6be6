"""Pre-shared OSCORE contexts on a state volume, as aiocoap context directories.

A context the trust center handed out (to a thing, or to a backend for one thing) lives in a
directory of its own: ``secret.json`` with the RFC 8613 parameters (mode 0600, written once),
and aiocoap's ``sequence.json``, where ``FilesystemSecurityContext`` keeps the sender sequence
number (in growing steps, RFC 8613 B.1.1) and the replay window. That is what keeps a restart
from reopening replays: after a clean ``close`` the exact window is on disk; after a crash it
reads "unknown" and the first request is answered 4.01 with an Echo challenge (B.1.2), which
aiocoap clients answer by themselves, so a replayed old datagram never reaches a handler.

A new grant (other generation, other secret) gets a new directory, never rewrites an old one:
reusing sequence numbers under a secret, or a stale replay window under a new one, would break
OSCORE's nonce uniqueness or lock the peer out. Callers keep the current directory name in an
index file and delete the old directory after switching.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import filelock
from aiocoap import oscore

from testbed.node.coap.group import GroupKey
from testbed.node.errors import StateError

SECRET_FILE = "secret.json"
DIR_MODE = 0o700
FILE_MODE = 0o600


class Grant(Protocol):
    """Both enrollment_api.OscoreContextGrant and bootstrap.profile.OscoreGrant fit."""

    @property
    def purpose(self) -> str: ...
    @property
    def sender_id(self) -> bytes: ...
    @property
    def recipient_id(self) -> bytes: ...
    @property
    def master_secret(self) -> bytes: ...
    @property
    def master_salt(self) -> bytes: ...
    @property
    def id_context(self) -> bytes | None: ...
    @property
    def generation(self) -> int: ...


def _settings(grant: Grant) -> dict[str, Any]:
    # aiocoap's loader turns "<name>_hex" into bytes; other keys it ignores, so the testbed's
    # bookkeeping can ride along.
    data: dict[str, Any] = {
        "sender-id_hex": grant.sender_id.hex(),
        "recipient-id_hex": grant.recipient_id.hex(),
        "secret_hex": grant.master_secret.hex(),
        "salt_hex": grant.master_salt.hex(),
        "testbed-purpose": grant.purpose,
        "testbed-generation": grant.generation,
    }
    if grant.id_context is not None:
        data["id-context_hex"] = grant.id_context.hex()
    # A group context's accepted senders and group manager (Group OSCORE): kept beside the
    # key; aiocoap's pairwise loader never reads them (group contexts are built by coap.group).
    peers = getattr(grant, "peers", ())
    if peers:
        data["testbed-group-peers"] = {sid.hex(): ccs.hex() for sid, ccs in peers}
    manager = getattr(grant, "manager_credential", None)
    if manager is not None:
        data["testbed-group-manager"] = manager.hex()
    return data


def read_group(directory: Path) -> tuple[GroupKey, dict[bytes, bytes], bytes, bytes] | None:
    """(key, accepted senders' CCS by sender ID, manager CCS, own sender ID) of the group
    context in ``directory``; None if it is not a group context with senders to accept."""
    try:
        data = json.loads((directory / SECRET_FILE).read_text())
        peers = {bytes.fromhex(k): bytes.fromhex(v) for k, v in data["testbed-group-peers"].items()}
        key = GroupKey(
            group_id=bytes.fromhex(data["id-context_hex"]),
            master_secret=bytes.fromhex(data["secret_hex"]),
            master_salt=bytes.fromhex(data["salt_hex"]),
            generation=int(data["testbed-generation"]),
        )
        manager = bytes.fromhex(data.get("testbed-group-manager", ""))
        return key, peers, manager, bytes.fromhex(data["sender-id_hex"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def holds(directory: Path, grant: Grant) -> bool:
    """Does ``directory`` hold exactly this grant (so its sequence state stays valid)?"""
    try:
        return bool(json.loads((directory / SECRET_FILE).read_text()) == _settings(grant))
    except (OSError, ValueError):
        return False


def generation_of(directory: Path) -> int | None:
    """The trust center's generation of the context in ``directory`` (None: unreadable)."""
    try:
        return int(json.loads((directory / SECRET_FILE).read_text())["testbed-generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_context(root: Path, grant: Grant) -> Path:
    """A new directory under ``root`` holding ``grant``; it appears complete or not at all."""
    name = f"{grant.purpose}-g{grant.generation}-{secrets.token_hex(4)}"
    target = root / name
    try:
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            payload = json.dumps(_settings(grant), indent=2, sort_keys=True).encode()
            fd = os.open(staging / SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(root)
    except OSError as exc:
        raise StateError(
            f"cannot write OSCORE context under {root}: {exc.strerror or exc}",
            "check that the state volume is mounted read-write and not full",
        ) from exc
    return target


def remove_except(root: Path, keep: set[Path]) -> None:
    """Delete context directories under ``root`` that are not in ``keep`` (superseded ones)."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.is_dir() and entry not in keep:
            shutil.rmtree(entry, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Told why a request or response did not unprotect: "replay", "echo-recovery", "invalid".
RefusalHook = Callable[[str], None]


class PersistentContext(oscore.FilesystemSecurityContext):  # type: ignore[misc]
    """aiocoap's directory-backed context that reports refusals and closes explicitly."""

    def __init__(self, basedir: Path, on_refusal: RefusalHook | None = None) -> None:
        try:
            super().__init__(str(basedir))
        except filelock.Timeout as exc:
            raise StateError(
                f"OSCORE context {basedir} is in use by another process",
                "one process per context directory (aiocoap's lock file)",
            ) from exc
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot load OSCORE context {basedir}: {exc}") from exc
        self.directory = basedir
        self.on_refusal = on_refusal
        meta = json.loads((basedir / SECRET_FILE).read_text())
        self.purpose = str(meta.get("testbed-purpose", ""))
        self.generation = int(meta.get("testbed-generation", 0))

    def unprotect(self, protected_message: Any, request_id: Any = None) -> Any:
        try:
            return super().unprotect(protected_message, request_id)
        except oscore.ReplayErrorWithEcho:
            self._refused("echo-recovery")
            raise
        except oscore.ReplayError:
            self._refused("replay")
            raise
        except (oscore.ProtectionInvalid, ValueError):
            self._refused("invalid")
            raise

    def _refused(self, why: str) -> None:
        if self.on_refusal is not None:
            self.on_refusal(why)

    @property
    def closed(self) -> bool:
        return self.lockfile is None

    def close(self) -> None:
        """Persist the exact sequence number and replay window, release the lock.

        aiocoap does this only in ``__del__``; a role stopped in a running process (tests, a
        re-bootstrap) must free the directory now. The object is unusable afterwards.
        """
        if self.lockfile is not None:
            with contextlib.suppress(OSError):
                self._destroy()
