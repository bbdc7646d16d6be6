"""Ownership transfer on the controller: the current owner extends a thing's voucher.

The voucher chain of a thing lives in ``RUN/pki/things/NAME/voucher.cbor``; its last link
names the current owner. Transferring it to domain D appends a link signed with the current
owner's key (``RUN/pki/domains/OLD/owner.key.pem``) that names D's owner key, as FIDO Device
Onboard does, and stores the longer chain in place. The new owner's trust center then imports
it (``testbed.iot.trust_center``) and the thing adopts D's trust center
(``testbed.iot.thing`` ``transfer_to``), whose URI and credential this also returns.

Idempotent: a chain that already ends at D is left as it is (``changed`` false).

    python -m testbed.phases.transfer --run-dir RUN --thing NAME --to DOMAIN [--check]
    python -m testbed.phases.transfer --run-dir RUN --thing NAME --owner

The second form only says who owns the thing now (the domain the chain ends at, and that
domain's trust center from the plan): the playbooks pick the acting trust center from it, never
from the domain a thing reports about itself, which a compromised thing can make up.

Each prints the result as JSON, or {"failed": true, "msg": ..., "hint": ...} and exits 1 (the
recommission playbook runs it delegated to localhost).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testbed import pki
from testbed.errors import PkiError, TestbedError
from testbed.errors import TransferError as TransferError  # re-exported
from testbed.node import material as M
from testbed.pki import keys

COAP_PORT = M.COAP_PORT


@dataclass(frozen=True)
class TrustCenterRef:
    node: str
    domain: str
    uri: str
    ccs: str  # base64 of its CCS (EDHOC credential)


@dataclass(frozen=True)
class TransferResult:
    thing: str
    serial: str
    from_domain: str
    to_domain: str
    changed: bool
    links: int
    voucher: str  # base64 of the (extended) chain
    trust_center: TrustCenterRef

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _domains(run_dir: Path) -> dict[str, Path]:
    root = run_dir / "pki" / "domains"
    if not root.is_dir():
        raise TransferError(
            f"{root} does not exist", "is this the run directory of a running testbed?"
        )
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}


def owner_of(voucher: pki.Voucher, domains: dict[str, Path]) -> str:
    """The domain whose owner key the chain ends at."""
    for name, directory in domains.items():
        pem = (directory / "owner.pub.pem").read_bytes()
        if keys.same(voucher.owner_key, keys.load_public(pem, str(directory))):
            return name
    raise TransferError(
        f"the voucher of {voucher.serial} names an owner that is none of this building's "
        f"domains ({', '.join(domains)})",
        "a thing minted with the foreign-voucher fault cannot be transferred by its owner",
    )


def trust_center_of(run_dir: Path, domain: str) -> TrustCenterRef:
    """The domain's trust center from the run's plan: node, CoAP URI and credential."""
    try:
        plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TransferError(f"cannot read {run_dir / 'plan.json'}: {exc}") from exc
    for node in plan.get("nodes", []):
        config = node.get("config", {})
        if (
            node.get("role") != "trust_center"
            or config.get("attributes", {}).get("domain") != domain
        ):
            continue
        backbone = next(
            (
                i["ipv6"].split("/")[0]
                for i in config.get("interfaces", [])
                if i["network"] == "backbone"
            ),
            None,
        )
        ccs_path = run_dir / "nodes" / node["name"] / M.TC_CCS
        try:
            ccs = base64.b64encode(ccs_path.read_bytes()).decode("ascii")
        except OSError as exc:
            raise TransferError(f"cannot read {ccs_path}: {exc.strerror}") from exc
        if backbone is None:
            raise TransferError(f"trust center {node['name']} has no backbone address in the plan")
        return TrustCenterRef(node["name"], domain, f"coap://[{backbone}]:{COAP_PORT}", ccs)
    raise TransferError(
        f"domain {domain!r} has no trust center in this run",
        "name a domain of the topology (testbed inventory shows the domain_* groups)",
    )


def transfer(run_dir: Path, thing: str, to_domain: str, *, check: bool = False) -> TransferResult:
    """Extend the thing's voucher to ``to_domain`` (unless it already ends there)."""
    domains = _domains(run_dir)
    if to_domain not in domains:
        raise TransferError(
            f"unknown domain {to_domain!r}; this run has: {', '.join(domains)}",
            "name one of the topology's domains",
        )
    chain = _voucher_chain(run_dir, thing)
    current = owner_of(chain, domains)
    changed = current != to_domain
    if changed:
        owner = pki.load_domain(domains[current])
        target = pki.load_domain(domains[to_domain])
        chain = pki.extend_voucher(chain, owner.owner_key, target.owner_public_key)
        if not check:
            pki.write_files(run_dir / "pki" / "things" / thing, {"voucher.cbor": chain.to_bytes()})
    return TransferResult(
        thing=thing,
        serial=chain.serial,
        from_domain=current,
        to_domain=to_domain,
        changed=changed,
        links=len(chain),
        voucher=base64.b64encode(chain.to_bytes()).decode("ascii"),
        trust_center=trust_center_of(run_dir, to_domain),
    )


@dataclass(frozen=True)
class OwnerResult:
    thing: str
    serial: str
    domain: str
    links: int
    by: str  # "voucher": the chain ends at this domain; "plan": it names none of the building's
    trust_center: TrustCenterRef

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _voucher_chain(run_dir: Path, thing: str) -> pki.Voucher:
    """The thing's voucher chain as the run's records hold it (TransferError if none)."""
    thing_dir = run_dir / "pki" / "things" / thing
    try:
        chain = pki.load_voucher(thing_dir)
    except PkiError as exc:
        raise TransferError(exc.message, "is the thing name right?") from exc
    if chain is None:
        raise TransferError(f"{thing_dir} holds no voucher", "is the thing name right?")
    return chain


def current_owner(run_dir: Path, thing: str) -> OwnerResult:
    """Who owns ``thing`` according to the run's records (its voucher chain), and that
    owner's trust center from the plan."""
    domains = _domains(run_dir)
    chain = _voucher_chain(run_dir, thing)
    try:
        domain, by = owner_of(chain, domains), "voucher"
    except TransferError:
        # A voucher naming no owner of this building (the foreign-voucher fault): the plan's
        # domain of the thing takes its record, and refuses it as foreign-owner at enrollment.
        domain, by = _planned_domain(run_dir, thing), "plan"
    return OwnerResult(
        thing, chain.serial, domain, len(chain), by, trust_center_of(run_dir, domain)
    )


def _planned_domain(run_dir: Path, thing: str) -> str:
    try:
        plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TransferError(f"cannot read {run_dir / 'plan.json'}: {exc}") from exc
    for node in plan.get("nodes", []):
        if node.get("name") == thing:
            domain = node.get("config", {}).get("attributes", {}).get("domain")
            if isinstance(domain, str) and domain:
                return domain
    raise TransferError(f"{thing} has neither a known owner nor a planned domain")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.phases.transfer")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--thing", required=True)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", dest="to_domain", help="extend the voucher to this domain")
    target.add_argument("--owner", action="store_true", help="only say who owns the thing")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compute, write nothing")
    mode.add_argument("--write", action="store_true", help="store the extended chain (default)")
    args = parser.parse_args(argv)
    try:
        result: TransferResult | OwnerResult
        if args.owner:
            result = current_owner(args.run_dir, args.thing)
        else:
            result = transfer(args.run_dir, args.thing, args.to_domain, check=args.check)
    except TestbedError as exc:
        print(json.dumps({"failed": True, "msg": exc.message, "hint": exc.hint}))
        return 1
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
