"""Time for certificates and vouchers: always UTC, whole seconds, injectable for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from testbed.errors import PkiError

# IEEE 802.1AR Section 8.5: an IDevID (and the CA behind it) has no meaningful expiry and uses
# 99991231235959Z as notAfter.
FOREVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# notBefore is set this far in the past: containers, the host and suspended laptops disagree
# a little about the time, and a certificate that is "not yet valid" fails a whole run.
CLOCK_SKEW = timedelta(minutes=5)


def utc(when: datetime | None = None) -> datetime:
    """``when`` (default: now) as an aware UTC datetime without microseconds."""
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        raise PkiError("naive datetime given", "pass an aware datetime, e.g. datetime.now(UTC)")
    return when.astimezone(UTC).replace(microsecond=0)


def not_after(start: datetime, lifetime: timedelta | None) -> datetime:
    """``start + lifetime``, or FOREVER for ``None`` (and never beyond FOREVER)."""
    return FOREVER if lifetime is None else min(start + lifetime, FOREVER)
