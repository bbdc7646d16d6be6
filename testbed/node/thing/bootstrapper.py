"""One bootstrap run of a thing: attempts with backoff until operational or finally refused.

Each attempt makes a CSR for the operational key (created once, reused by every retry), runs
the profile against the trust center, and accounts for what it cost. Then:

- success: LDevID and OSCORE contexts are persisted (store), the thing becomes operational;
- a failure retrying can cure (timeout, unreachable, handshake refused: the trust center may
  not have imported our voucher yet; a 5.xx answer) waits ``RetryPolicy.delay`` and tries
  again, for as long as it takes: a thing in a building does not give up on its owner;
- any other failure is final: the thing goes to ``failed`` with the reason recorded (the trust
  center's RefusalReason code for a 4.03, else the profile's FailureReason).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.contracts.node_config import Attr
from testbed.errors import PkiError
from testbed.node import material
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapProfile,
    BootstrapResult,
    FactoryIdentity,
    FailureReason,
    Outcome,
    TrustCenterRef,
)
from testbed.node.lifecycle import LifecycleState
from testbed.node.logs import EventLog
from testbed.node.thing.metrics import ThingMetrics
from testbed.node.thing.store import Operational, ThingStore
from testbed.pki import load_device, make_csr

RETRYABLE = frozenset(
    {FailureReason.TIMEOUT, FailureReason.UNREACHABLE, FailureReason.HANDSHAKE_REFUSED}
)


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 1.0
    max_s: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Exponential (1, 2, 4, ... s, capped) with "equal jitter": half the step is random,
        so that a building's things that failed together do not retry together."""
        step = min(self.max_s, self.initial_s * 2 ** max(failures - 1, 0))
        return rng.uniform(step / 2, step)


def retryable(result: BootstrapResult) -> bool:
    if result.reason in RETRYABLE:
        return True
    # A trust center that answered 5.xx may be overloaded or restarting; 4.xx is deliberate.
    return result.reason is FailureReason.ENROLLMENT_REFUSED and (result.code or "").startswith(
        "5."
    )


def reason_of(result: BootstrapResult) -> str:
    """The reason a failed attempt is recorded and labelled with; "none" for success."""
    if result.reason is None:
        return "none"
    return result.refusal or result.reason.value


Move = Callable[[LifecycleState, str | None], None]
T = TypeVar("T")


class Bootstrapper:
    def __init__(
        self,
        *,
        node: str,
        profile: BootstrapProfile,
        material_root: Path,
        attributes: Mapping[str, str],
        store: ThingStore,
        metrics: ThingMetrics,
        log: EventLog,
        move: Move,
        on_operational: Callable[[Operational], Awaitable[None]],
        policy: RetryPolicy = RetryPolicy(),
        timeout_s: float | None = None,
        rng: random.Random | None = None,
        trust_center: Callable[[], TrustCenterRef] | None = None,
    ) -> None:
        self.node = node
        self.profile = profile
        self.material_root = material_root
        self.attributes = dict(attributes)
        self.store = store
        self.metrics = metrics
        self.log = log
        self._move = move
        self._on_operational = on_operational
        self.policy = policy
        self.timeout_s = timeout_s
        self.rng = rng or random.Random()
        # Asked at every attempt: an ownership transfer changes it (testbed.node.thing.owner).
        self._trust_center = trust_center or self._trust_center_from_attributes
        self.attempts = 0  # in the current run
        self.running = False
        self.next_attempt_at: float | None = None  # monotonic, while waiting to retry
        self.last: dict[str, Any] | None = store.load_result()
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Cut a backoff wait short: the next attempt starts now."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        wait = None
        if self.next_attempt_at is not None:
            wait = round(max(0.0, self.next_attempt_at - time.monotonic()), 3)
        return {
            "running": self.running,
            "attempts": self.attempts,
            "next_attempt_in_s": wait,
            "last": self.last,
        }

    def stopped(self) -> None:
        """The run's task was cancelled, maybe before it ever ran (so ``run``'s own cleanup
        did not either)."""
        self.running, self.next_attempt_at = False, None

    def launch(self, spawn: Callable[[Coroutine[Any, Any, None], str], T]) -> T:
        """Start a run with ``spawn`` (Role.spawn); running from this moment on, so that a
        status taken right after says so."""
        self.running, self.attempts = True, 0
        return spawn(self.run(), "bootstrap")

    async def run(self) -> None:
        """Attempts until operational or failed; the lifecycle is in bootstrapping already."""
        self.running = True
        try:
            while True:
                self.attempts += 1
                self.log.info("bootstrap.attempt", attempt=self.attempts, profile=self.profile.name)
                result = await self._attempt()
                operational = self._account(result)
                if operational is not None:
                    self._move(LifecycleState.OPERATIONAL, None)
                    await self._on_operational(operational)
                    return
                if not retryable(result):
                    self._move(LifecycleState.FAILED, reason_of(result))
                    return
                delay = self.policy.delay(self.attempts, self.rng)
                self.log.info(
                    "bootstrap.retry",
                    attempt=self.attempts,
                    reason=reason_of(result),
                    delay_s=round(delay, 3),
                )
                self.next_attempt_at = time.monotonic() + delay
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                self.next_attempt_at = None
        finally:
            self.running, self.next_attempt_at = False, None

    async def _attempt(self) -> BootstrapResult:
        try:
            ctx = self.context()
        except (PkiError, ValueError, OSError) as exc:
            detail = getattr(exc, "message", None) or str(exc)
            return BootstrapResult.measured(
                self.profile.name, 0.0, [], reason=FailureReason.CONFIGURATION, detail=detail
            )
        return await self.profile.bootstrap(ctx)

    def _trust_center_from_attributes(self) -> TrustCenterRef:
        return TrustCenterRef(
            uri=self.attributes[Attr.TRUST_CENTER_URI],
            ccs=material.path(material.TRUST_CENTER_CCS, self.material_root),
            ca_certificate=material.path(material.TRUST_CENTER_CA, self.material_root),
        )

    def context(self, key: ec.EllipticCurvePrivateKey | None = None) -> BootstrapContext:
        """What a profile needs for one attempt, with a CSR for ``key`` (default: the
        operational key). PkiError, ValueError or OSError if the factory material is unusable."""
        root = self.material_root
        device = load_device(root / material.IDENTITY)  # key, IDevID and CCS, checked together
        serial = self.attributes.get(Attr.SERIAL)
        if serial and serial != device.serial:
            raise ValueError(f"attribute serial {serial!r} but the IDevID says {device.serial!r}")
        csr = make_csr(device, key or self.store.operational_key())
        extra = {} if self.timeout_s is None else {"timeout_s": self.timeout_s}
        return BootstrapContext(
            node=self.node,
            identity=FactoryIdentity(
                private_key=material.path(material.DEVICE_KEY_PEM, root),
                idevid=material.path(material.IDEVID_DER, root),
                ccs=material.path(material.DEVICE_CCS, root),
                psk=material.path(material.DEVICE_PSK, root),
            ),
            trust_center=self._trust_center(),
            csr_der=csr.public_bytes(serialization.Encoding.DER),
            attributes=self.attributes,
            **extra,
        )

    def _account(self, result: BootstrapResult) -> Operational | None:
        """Persist and export one attempt; the operational material if it succeeded."""
        operational = None
        if result.outcome is Outcome.SUCCESS and result.enrollment is not None:
            problem = self._check(result)
            if problem is None:
                operational = self.store.save_enrollment(
                    result.enrollment.ldevid_der, result.enrollment.oscore_contexts
                )
            else:
                result = BootstrapResult(
                    result.profile,
                    Outcome.FAILURE,
                    result.duration_s,
                    result.messages,
                    FailureReason.PROTOCOL_ERROR,
                    problem,
                )
        reason = reason_of(result)
        self.metrics.observe_attempt(result, reason)
        self.last = {**result.to_dict(), "attempt": self.attempts, "at": time.time()}
        self.store.save_result(self.last)
        fields = {"attempt": self.attempts, "duration_s": round(result.duration_s, 3)}
        if operational is None:
            self.log.warning("bootstrap.failed", reason=reason, detail=result.detail, **fields)
        else:
            self.log.info("bootstrap.succeeded", **fields)
        return operational

    def _check(self, result: BootstrapResult) -> str | None:
        assert result.enrollment is not None
        cert = x509.load_der_x509_certificate(result.enrollment.ldevid_der)
        ours = self.store.operational_key().public_key()
        if cert.public_key() != ours:
            return "the LDevID certifies another key than our operational key"
        if not result.enrollment.oscore_contexts:
            self.log.warning("bootstrap.no_contexts", detail="the trust center granted none")
        return None
