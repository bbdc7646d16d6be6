"""Revocation is final for the owner that revoked.

A revoked thing's device record is never replaced at this trust center, whatever the new bytes
are: a voucher with a malleated signature, a chain that went to another owner and back, a fresh
IDevID of the same serial. Letting a new record undo a revocation would hand the decision to
whoever can produce new bytes (before canonical signatures, anyone could, from the public
record alone), and an operator who revoked a thing for a key compromise cannot tell those cases
apart from a legitimate return. A thing that really comes back is a new decision that needs a
new identity (a new serial from its vendor), not a re-import.
"""

from __future__ import annotations

from testbed.node.errors import ActionError
from testbed.node.trust_center.schema import REVOKED, Thing


def refuse_reinstatement(thing: Thing | None, changed: bool) -> None:
    """ActionError when a changed record would replace a revoked thing's record."""
    if thing is not None and thing.state == REVOKED and changed:
        raise ActionError(
            f"{thing.serial} is revoked at this trust center; revocation is final, a new"
            " record for it is refused",
            "a thing that returns to this owner needs a new identity from its vendor",
        )
