"""The responder's EDHOC sessions: connection identifiers, OSCORE contexts, eviction.

aiocoap 0.4.17 offers C_R only from the 48 one-byte values (CBOR ints -24..23), keeps every
context forever and answers the 49th message_1 with 5.00. A trust center must bootstrap
hundreds of things, so this table replaces that store:

- C_R is the shortest free identifier: one of the 48 one-byte values while any is free (so
  small deployments keep RFC 9529's message sizes), then two-byte byte strings (65,536 more;
  lakers accepts up to 8 bytes). A longer C_R costs one byte more in message_2 and in every
  OSCORE request's kid, no more.
- Half-done handshakes (message_2 sent, no message_3 yet) live in their own small table with a
  timeout, so a flood of message_1s cannot push out established contexts. That table is shared
  fairly between source addresses: one source holds at most ``max_pending_per_source`` (its
  own oldest goes first), and when the table is full the source holding the most loses its
  oldest, so a flood from one address can only evict its own handshakes.
- Established contexts are kept least recently used first and the oldest is dropped beyond
  ``max_sessions``; its peer then gets 4.01 (context not found) and runs EDHOC again.

The table also answers aiocoap's two credential questions (``find_oscore`` by kid and
``find_edhoc_by_id_cred_peer``), which is all the OSCORE site wrapper and the responder
context ask of a credentials map.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2
from aiocoap import error, oscore
from aiocoap.edhoc import EdhocResponderContext

from testbed.node.coap.credentials import ID_CRED_KID, KCCS, Credential, PeerLookup
from testbed.node.coap.errors import CredentialError

# Byte strings whose value is a one-byte CBOR int: EDHOC sends these as the int itself.
ONE_BYTE_IDS = tuple(cbor2.dumps(i) for i in range(-24, 24))
_TWO_BYTE_SPACE = 1 << 16


@dataclass
class SessionStats:
    handshakes_started: int = 0
    handshakes_completed: int = 0
    handshakes_failed: int = 0
    evicted_pending: int = 0
    evicted_established: int = 0
    evicted_own: int = 0  # pending evicted because their source was over its share
    expired_pending: int = 0  # pending that timed out
    forgotten: int = 0  # established, then dropped at once because the peer was refused


class ResponderSession(EdhocResponderContext):  # type: ignore[misc]
    """aiocoap's responder context, reporting its outcome to the session table."""

    # aiocoap 0.4.17 reads ``echo_recovery`` when it sees a replayed sequence number, but EDHOC
    # contexts never define it, so a replay raised AttributeError (5.00). None means "no
    # RFC 8613 B.1.2 recovery": the replay is refused with 4.01 as it should be.
    echo_recovery = None

    def __init__(self, responder: Any, c_i: bytes, c_r: bytes, table: SessionTable) -> None:
        super().__init__(responder, c_i, c_r, table, table.log)
        self._table = table

    def forget(self) -> bool:
        """Take this session out of its table (see ``SessionTable.forget``)."""
        return self._table.forget(self)

    def _offer_message_3(self, message_3: bytes) -> bytes:
        if not self._incomplete:
            result: bytes = super()._offer_message_3(message_3)
            return result
        try:
            result = super()._offer_message_3(message_3)
        except error.RenderableError:
            self._table.fail(self)
            raise
        except ValueError as exc:
            # lakers raises ValueError("EDHOCError::MacVerificationFailed") when the initiator
            # does not hold the key of the credential it named: an authentication failure.
            self._table.fail(self)
            raise error.Unauthorized("EDHOC authentication failed") from exc
        self._table.complete(self)
        return result


class SessionTable:
    """Bounded store of EDHOC responder sessions, keyed by C_R (= OSCORE recipient ID)."""

    def __init__(
        self,
        peers: PeerLookup,
        log: Any,
        *,
        max_sessions: int = 4096,
        max_pending: int = 256,
        pending_timeout: float = 60.0,
        max_pending_per_source: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or max_pending < 1 or max_pending_per_source < 1:
            raise ValueError(
                "max_sessions, max_pending and max_pending_per_source must be positive"
            )
        if max_sessions + max_pending >= len(ONE_BYTE_IDS) + _TWO_BYTE_SPACE:
            raise ValueError("more sessions than one- and two-byte connection identifiers")
        self.peers = peers
        self.log = log
        self.max_sessions = max_sessions
        self.max_pending = max_pending
        self.pending_timeout = pending_timeout
        self.max_pending_per_source = max_pending_per_source
        self._clock = clock
        self._pending: OrderedDict[bytes, tuple[ResponderSession, float]] = OrderedDict()
        self._source_of: dict[bytes, str] = {}  # pending C_R -> source address
        self.pending_by_source: dict[str, int] = {}
        self._established: OrderedDict[bytes, ResponderSession] = OrderedDict()
        self._next_long = 0
        self.stats = SessionStats()

    def __len__(self) -> int:
        return len(self._pending) + len(self._established)

    def __contains__(self, c_r: bytes) -> bool:
        return c_r in self._pending or c_r in self._established

    # -- the responder's side of a handshake

    def open(self, responder: Any, c_i: bytes, source: str = "") -> ResponderSession:
        """Allocate a C_R (never equal to C_I: the two become the OSCORE IDs) for a new session
        of ``source`` (the initiator's address; "" for callers that drive the table without
        one, which share no cap)."""
        self._expire_pending()
        while source and self.pending_by_source.get(source, 0) >= self.max_pending_per_source:
            self._evict_oldest_of(source)
            self.stats.evicted_own += 1
        while len(self._pending) >= self.max_pending:
            heaviest = max(self.pending_by_source, key=lambda s: self.pending_by_source[s])
            self._evict_oldest_of(heaviest)
        session = ResponderSession(responder, c_i, self._allocate(avoid=c_i), self)
        self._pending[session.recipient_id] = (session, self._clock())
        self._source_of[session.recipient_id] = source
        self.pending_by_source[source] = self.pending_by_source.get(source, 0) + 1
        self.stats.handshakes_started += 1
        return session

    def _evict_oldest_of(self, source: str) -> None:
        for c_r in self._pending:
            if self._source_of.get(c_r) == source:
                self._drop_pending(c_r)
                self.stats.evicted_pending += 1
                return

    def _drop_pending(self, c_r: bytes) -> None:
        if self._pending.pop(c_r, None) is None:
            return
        source = self._source_of.pop(c_r, "")
        left = self.pending_by_source.get(source, 0) - 1
        if left > 0:
            self.pending_by_source[source] = left
        else:
            self.pending_by_source.pop(source, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def complete(self, session: ResponderSession) -> None:
        c_r = session.recipient_id
        self._drop_pending(c_r)
        while len(self._established) >= self.max_sessions:
            evicted, _ = self._established.popitem(last=False)
            self.log.info("Evicting least recently used OSCORE context with C_R %s", evicted.hex())
            self.stats.evicted_established += 1
        self._established[c_r] = session
        self.stats.handshakes_completed += 1

    def forget(self, session: ResponderSession) -> bool:
        """Drop an established session now (its peer was refused: nothing of it is kept)."""
        c_r = session.recipient_id
        if self._established.get(c_r) is session:
            del self._established[c_r]
            self.stats.forgotten += 1
            return True
        return False

    def fail(self, session: ResponderSession) -> None:
        self._drop_pending(session.recipient_id)
        self.stats.handshakes_failed += 1

    def session(self, c_r: bytes) -> ResponderSession | None:
        found = self._established.get(c_r)
        if found is None and c_r in self._pending:
            found = self._pending[c_r][0]
        return found

    def _allocate(self, avoid: bytes) -> bytes:
        for candidate in ONE_BYTE_IDS:
            if candidate != avoid and candidate not in self:
                return candidate
        # The bound checked in __init__ leaves at least one two-byte value free.
        while True:
            candidate = self._next_long.to_bytes(2, "big")
            self._next_long = (self._next_long + 1) % _TWO_BYTE_SPACE
            if candidate not in self:
                return candidate

    def _expire_pending(self) -> None:
        deadline = self._clock() - self.pending_timeout
        while self._pending:
            c_r, (_, started) = next(iter(self._pending.items()))
            if started > deadline:
                break
            self._drop_pending(c_r)
            self.stats.evicted_pending += 1
            self.stats.expired_pending += 1

    # -- what aiocoap asks of a server credentials map

    def find_oscore(self, unprotected: dict[int, Any]) -> ResponderSession:
        """The context for an incoming OSCORE request's kid; KeyError makes aiocoap answer 4.01."""
        if oscore.COSE_KID_CONTEXT in unprotected:
            raise KeyError("EDHOC-derived contexts have no ID context")
        kid = unprotected.get(oscore.COSE_KID)
        if not isinstance(kid, bytes):
            raise KeyError("request without kid")
        if kid in self._established:
            self._established.move_to_end(kid)  # least recently used goes first
            return self._established[kid]
        if kid in self._pending:
            return self._pending[kid][0]  # message_3 rides on this request (RFC 9668)
        raise KeyError(kid)

    def find_edhoc_by_id_cred_peer(self, id_cred_i: bytes) -> tuple[bytes, list[Credential]]:
        """CRED_I for the ID_CRED_I in message_3, and the claim resources will see.

        Raises 4.01 (not aiocoap's KeyError, which it turns into 4.00) for unknown peers: the
        request is well-formed, the initiator is just not admitted.
        """
        credential = self._lookup(id_cred_i)
        if credential is None:
            self.log.warning("EDHOC initiator refused: ID_CRED_I %s unknown", id_cred_i.hex())
            raise error.Unauthorized("EDHOC initiator not admitted")
        return credential.encoded, [credential]

    def _lookup(self, id_cred_i: bytes) -> Credential | None:
        try:
            header = cbor2.loads(id_cred_i)
        except (cbor2.CBORDecodeError, ValueError):
            return None
        if not isinstance(header, dict):
            return None
        kid = header.get(ID_CRED_KID)
        if isinstance(kid, bytes):
            return self.peers(kid)
        by_value = header.get(KCCS)
        if isinstance(by_value, dict):
            # A CCS sent by value is only as good as the table's entry for its kid.
            try:
                offered = Credential.from_claims(by_value)
            except CredentialError:
                return None
            known = self.peers(offered.kid)
            return known if known is not None and known.encoded == offered.encoded else None
        return None
