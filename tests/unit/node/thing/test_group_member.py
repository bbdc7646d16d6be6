"""Group commands end to end in one process: the real trust center hands out the group key with
the backend's credential, the backend signs one command under it, operational luminaires act
on it without answering; when a member leaves, the new generation locks out what it kept, and
the remaining members act again once they have renewed their contexts."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import cbor2

from testbed.node import enrollment_api as api
from testbed.node import material
from testbed.node.backend.directory import TrustCenterDirectory
from testbed.node.backend.group import GroupCommander
from testbed.node.coap import group
from testbed.node.coap.credentials import Credential, load_private_key
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.thing.group_member import member_context
from testbed.node.thing.role import ThingRole
from tests.unit.node.thing.world import DOMAIN, World, eventually


async def commander(world: World) -> tuple[GroupCommander, int]:
    """The backend's commander, fed from a /things listing the way its poll loop does."""
    root = world.write_backend_material()
    directory = await TrustCenterDirectory.connect(DOMAIN, world.tc_uri, root)
    try:
        things = await directory.things()
    finally:
        await directory.close()
    out = GroupCommander(root)
    out.update(DOMAIN, directory.group)
    return out, len(things)


def send(port: int, datagram: bytes) -> bytes | None:
    """Deliver a group datagram to a member's CoAP port; what it answers within 0.5 s."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(datagram, ("::1", port))
        try:
            return sock.recv(2048)
        except TimeoutError:
            return None


def command(out: GroupCommander, on: bool) -> bytes:
    sender = out._sender(DOMAIN)
    return group.protect(sender.context, group.command("light", cbor2.dumps({"on": on})))


def light(role: ThingRole) -> Any:
    return role.device.read("light")


def test_members_act_on_one_signed_command_and_a_leaver_is_locked_out(world: World) -> None:
    lamps = [world.make_thing(f"lamp-{i}", "luminaire") for i in (1, 2)]

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with world.trust_center() as tc:
            roles = [world.thing_role(t) for t in lamps]
            for role in roles:
                await role.start()
            try:
                await eventually(lambda: all(r.lifecycle.state is S.OPERATIONAL for r in roles))
                cmd, listed = await commander(world)
                assert listed == 2
                grant = cmd.grants[DOMAIN]
                out["commander"] = (grant.sender_id, grant.generation)
                # Each lamp's stored group grant names the backend as the one commander.
                stored = [r.store.load_operational() for r in roles]
                members = [
                    member_context(o.contexts[api.PURPOSE_GROUP], r.material_root)
                    for o, r in zip(stored, roles, strict=True)
                    if o is not None
                ]
                out["peers"] = [sorted(m.peers) if m is not None else None for m in members]
                for role in roles:
                    role.device.write("light", {"on": True})
                off = command(cmd, False)
                out["answers"] = [
                    await asyncio.to_thread(send, r.server.port, off) for r in roles if r.server
                ]
                out["after_off"] = [light(r)["on"] for r in roles]
                out["replay"] = [
                    await asyncio.to_thread(send, r.server.port, off) for r in roles if r.server
                ]
                # A forged command: right group key, lamp-2's own key as signer.
                lamp2 = roles[1]
                forged_ctx = group.context(
                    group.GroupKey(
                        grant.id_context or b"",
                        grant.master_secret,
                        grant.master_salt,
                        grant.generation,
                    ),
                    grant.sender_id,
                    load_private_key(material.path(material.DEVICE_KEY_PEM, lamp2.material_root)),
                    Credential.from_file(
                        material.path(material.DEVICE_CCS, lamp2.material_root)
                    ).encoded,
                    {},
                    grant.manager_credential or b"",
                )
                roles[0].device.write("light", {"on": False})
                assert roles[0].server is not None
                forged = group.protect(
                    forged_ctx, group.command("light", cbor2.dumps({"on": True}))
                )
                out["forged_answer"] = await asyncio.to_thread(send, roles[0].server.port, forged)
                out["after_forgery"] = light(roles[0])["on"]

                # lamp-2 leaves; it keeps its old group context (what a sold device would).
                kept = stored[1]
                assert kept is not None
                old_member = member_context(kept.contexts[api.PURPOSE_GROUP], lamp2.material_root)
                await lamp2.actions()["decommission"]({})
                await tc.actions()["revoke"]({"serial": lamps[1].serial})
                cmd2, _ = await commander(world)
                out["new_generation"] = cmd2.grants[DOMAIN].generation
                on_again = command(cmd2, True)
                try:
                    group.unprotect([old_member], on_again)
                    out["leaver"] = "read it"
                except group.GroupRefused as refused:
                    out["leaver"] = refused.reason
                # lamp-1 still holds generation 1 until it renews its contexts.
                assert roles[0].server is not None
                await asyncio.to_thread(send, roles[0].server.port, on_again)
                out["stale_member"] = light(roles[0])["on"]
                await roles[0].actions()["rekey"]({})
                await eventually(lambda: roles[0].server is not None)
                assert roles[0].server is not None
                await asyncio.to_thread(send, roles[0].server.port, command(cmd2, True))
                out["renewed_member"] = light(roles[0])["on"]
            finally:
                for role in roles:
                    await role.stop()
        return out

    out = asyncio.run(scenario())
    assert out["commander"] == (group.GROUP_COMMANDER_ID, 1)
    assert out["peers"] == [[group.GROUP_COMMANDER_ID]] * 2
    assert out["answers"] == [None, None]  # no response to a group request
    assert out["after_off"] == [False, False]
    assert out["replay"] == [None, None]
    assert out["forged_answer"] is None  # not even an error goes back to a group request
    assert out["after_forgery"] is False  # the forged "on" was not acted on
    assert out["new_generation"] == 2
    assert out["leaver"] in ("foreign-group", "invalid")
    assert out["stale_member"] is False
    assert out["renewed_member"] is True
