"""Thing names: bound to the device record, unique in the domain, never taken from a claim.

A thing reports a name at enrollment (enrollment_api Q_NAME), and backends and operators
address things by name. A name that is only a claim lets any enrolled thing report another's
name and take its place in the listing. So:

- a record that carries a name (its sale record's ``name.txt``, or the ``name`` of
  ``import-device``) binds that name to the serial when it is imported; a name another serial
  holds is refused there;
- at enrollment, a thing whose record binds a name must report that name or none; a thing
  whose record binds none may report a name only while no other thing holds it, and keeps it
  (a later report cannot rename it);
- the registry holds names unique (an index), so no path around these checks can list two
  things under one name.

A refused name is a refusal like any other (``name-taken``), recorded and counted.
"""

from __future__ import annotations

from testbed.node.enrollment_api import RefusalReason
from testbed.node.trust_center.admission import Refused
from testbed.node.trust_center.devices import DeviceRecord
from testbed.node.trust_center.registry import Registry
from testbed.node.trust_center.schema import Thing


class NameTaken(ValueError):
    """The name is bound to another serial."""


def holder(registry: Registry, name: str) -> str | None:
    """The serial holding ``name``, if any."""
    row = registry.connection.execute(
        "SELECT serial FROM things WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else str(row[0])


def bind(registry: Registry, serial: str, name: str) -> bool:
    """Give ``serial`` the name ``name`` (its row must exist); NameTaken if another holds it.
    Returns whether anything changed."""
    taken = holder(registry, name)
    if taken == serial:
        return False
    if taken is not None:
        raise NameTaken(f"name {name!r} is bound to {taken}, not to {serial}")
    db = registry.connection
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("UPDATE things SET name = ? WHERE serial = ?", (name, serial))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    registry.version += 1
    return True


def admit_name(
    registry: Registry, record: DeviceRecord, thing: Thing, reported: str | None
) -> str | None:
    """The name to store for this enrollment (None: keep the stored one), or Refused."""
    if record.name is not None:
        if reported is not None and reported != record.name:
            raise Refused(
                RefusalReason.NAME_TAKEN,
                f"{record.serial} reports name {reported!r}, its record binds {record.name!r}",
                record,
            )
        return record.name
    if reported is None or reported == thing.name:
        return None
    if thing.name != thing.serial:
        raise Refused(
            RefusalReason.NAME_TAKEN,
            f"{record.serial} is named {thing.name!r}, it cannot rename itself {reported!r}",
            record,
        )
    taken = holder(registry, reported)
    if taken is not None:
        raise Refused(
            RefusalReason.NAME_TAKEN,
            f"{record.serial} reports name {reported!r}, which is {taken}'s",
            record,
        )
    return reported
