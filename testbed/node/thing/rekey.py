"""Key rotation: a new operational key, its LDevID by renewal (EST /sren), new OSCORE contexts.

One attempt, no retries (the operator asked for it and wants to know now): a fresh EDHOC with
the factory key (the credential the trust center knows things by; see thing.profiles), then
POST /.well-known/est/sren with a CSR for a *new* key, then GET /cfg/oscore. The trust center
answers /sren only for an enrolled thing, supersedes (revokes) the old LDevID and bumps the
context generation; the thing then stores the new contexts and deletes the old directories,
so the old context stops working on both ends (the backend learns the new generation from
/things). On failure nothing operational changes: the old LDevID and contexts stay in force.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cryptography import x509

from testbed.errors import PkiError
from testbed.node.bootstrap.profile import (
    BootstrapProfile,
    BootstrapResult,
    FailureReason,
    Outcome,
)
from testbed.node.thing.bootstrapper import Bootstrapper, reason_of
from testbed.node.thing.store import Operational, ThingStore


@dataclass(frozen=True)
class Renewed:
    result: BootstrapResult
    operational: Operational | None  # None: failed, nothing changed

    @property
    def reason(self) -> str:
        return reason_of(self.result) if self.operational is None else "none"


async def renew(
    bootstrapper: Bootstrapper, profile: BootstrapProfile, store: ThingStore, timeout_s: float
) -> Renewed:
    key = store.next_key()
    try:
        ctx = dataclasses.replace(bootstrapper.context(key), timeout_s=timeout_s)
    except (PkiError, ValueError, OSError) as exc:
        detail = getattr(exc, "message", None) or str(exc)
        return Renewed(
            BootstrapResult.measured(
                profile.name, 0.0, [], reason=FailureReason.CONFIGURATION, detail=detail
            ),
            None,
        )
    result = await profile.bootstrap(ctx)
    if result.enrollment is None or result.reason is not None:
        return Renewed(result, None)
    cert = x509.load_der_x509_certificate(result.enrollment.ldevid_der)
    problem = None
    if cert.public_key() != key.public_key():
        problem = "the renewed LDevID certifies another key than the new one"
    elif not result.enrollment.oscore_contexts:
        problem = "the trust center granted no contexts with the renewal"
    if problem is not None:
        failed = dataclasses.replace(
            result,
            outcome=Outcome.FAILURE,
            reason=FailureReason.PROTOCOL_ERROR,
            detail=problem,
            enrollment=None,
        )
        return Renewed(failed, None)
    operational = store.save_enrollment(
        result.enrollment.ldevid_der, result.enrollment.oscore_contexts, renewed_key=True
    )
    return Renewed(result, operational)
