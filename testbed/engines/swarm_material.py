"""A node's run-directory material on a swarm host that does not share the run directory.

On the host where `testbed` runs, a node's folder of the run directory is bind-mounted
read-only, as on Docker. Another swarm host has no such folder, and Swarm configs and secrets
exist only for services, so the folder is copied once into a volume of the run on that host
(``RUN-NODE-config``, labelled with the run so ``down`` removes it) and that volume is mounted
read-only. The copy keeps each file's mode (0600 secrets stay 0600, owned by root).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import docker

from testbed.plan import labels as L
from testbed.plan.model import NodePlan, Plan
from testbed.plan.planner import resource_name

MOUNT = "/material"


def material_tar(folder: Path) -> bytes:
    """The folder's files as a tar (root-owned, modes kept, no host user names)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def copy_to_volume(
    client: docker.DockerClient, plan: Plan, node: NodePlan, folder: Path, image: str
) -> str:
    """Fill the node's config volume on ``client``'s host from ``folder``; its name."""
    volume = resource_name(plan.run, f"{node.name}-config")
    client.volumes.create(volume, labels={L.RUN: plan.run, L.NODE: node.name})
    # A container that never starts: only its mount is used to write into the volume.
    helper = client.api.create_container(
        image,
        command=["true"],
        labels={L.RUN: plan.run},
        host_config=client.api.create_host_config(binds={volume: {"bind": MOUNT, "mode": "rw"}}),
    )
    try:
        client.api.put_archive(helper["Id"], MOUNT, material_tar(folder))
    finally:
        client.api.remove_container(helper["Id"], force=True)
    return volume
