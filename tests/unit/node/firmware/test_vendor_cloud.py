"""The vendor cloud host and the thing's block-wise fetch, over real aiocoap on ::1."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import cbor2
import pytest
from prometheus_client import CollectorRegistry

from testbed.node.coap.transport import create_context
from testbed.node.firmware import api
from testbed.node.firmware.client import FetchError, Transfer, get_blockwise, uri_of
from testbed.node.firmware.updater import FirmwareStore
from testbed.pki import firmware
from testbed.pki.firmware import Manifest
from tests.unit.node.thing.world import MODEL, World, sample


async def _get(world: World, path: list[str], **kw: Any) -> tuple[bytes, Transfer]:
    coap = await create_context()
    transfer = Transfer()
    try:
        data = await get_blockwise(
            coap,
            uri_of(world.cloud_uri, path),
            limit=kw.get("limit", 1 << 20),
            block_size=kw.get("block_size", 64),
            deadline=time.monotonic() + 5,
            transfer=transfer,
        )
    finally:
        await coap.shutdown()
    return data, transfer


def test_the_cloud_serves_index_manifest_and_image_blockwise(world: World) -> None:
    registry = CollectorRegistry()
    genuine = firmware.genuine_release(world.vendor, MODEL, "2.0.0")

    async def scenario() -> tuple[Any, ...]:
        async with world.vendor_cloud(registry) as cloud:
            index, _ = await _get(world, api.index_path("acme", MODEL))
            manifest, _ = await _get(world, api.release_path("acme", MODEL, "2.0.0", "manifest"))
            image, small = await _get(
                world, api.release_path("acme", MODEL, "2.0.0", "image"), block_size=64
            )
            _, large = await _get(
                world, api.release_path("acme", MODEL, "2.0.0", "image"), block_size=1024
            )
            status = await cloud.actions()["status"]({})
            return index, manifest, image, small, large, status

    index, manifest, image, small, large, status = asyncio.run(scenario())
    assert "2.0.0-tampered" in cbor2.loads(index) and len(cbor2.loads(index)) == 12
    assert firmware.verify_manifest(manifest, world.vendor.public_key).version == "2.0.0"
    assert image == genuine.image
    # One request per block: the cost a lossy PAN multiplies.
    assert small.requests == math.ceil(len(image) / 64) and small.bytes == len(image)
    assert large.requests == math.ceil(len(image) / 1024)
    assert status["changed"] is False
    assert len(status["vendor_cloud"]["releases"][f"acme/{MODEL}"]) == 12
    # Rendered once per transfer; aiocoap cuts the blocks from its cache.
    assert sample(registry, "testbed_vendor_cloud_requests_total", kind="image") == 2
    assert sample(registry, "testbed_vendor_cloud_requests_total", kind="manifest") == 1
    assert sample(registry, "testbed_vendor_cloud_releases") == 12
    assert world.failures == []


def test_fetching_stops_at_the_limit_and_reports_what_is_not_served(world: World) -> None:
    async def scenario() -> tuple[str, str, Transfer]:
        async with world.vendor_cloud():
            path = api.release_path("acme", MODEL, "2.0.0", "image")
            coap = await create_context()
            transfer = Transfer()
            try:
                with pytest.raises(FetchError) as over:
                    await get_blockwise(
                        coap,
                        uri_of(world.cloud_uri, path),
                        limit=200,
                        block_size=64,
                        deadline=time.monotonic() + 5,
                        transfer=transfer,
                    )
            finally:
                await coap.shutdown()
            with pytest.raises(FetchError) as missing:
                await _get(world, api.release_path("acme", MODEL, "9.9.9", "image"))
            return str(over.value), str(missing.value), transfer

    over, missing, transfer = asyncio.run(scenario())
    assert "more than the 200 bytes" in over
    # It stopped right after the block that crossed the limit: 4 blocks, not the whole image.
    assert transfer.requests == 4
    assert "4.04" in missing


def test_a_cloud_without_releases_serves_nothing_but_starts(world: World, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        # Material without firmware: the role starts, lists nothing, 4.04 for everything.
        (world.tmp / "nodes" / "cloud-1").mkdir(parents=True, mode=0o700)
        async with world.vendor_cloud() as cloud:
            with pytest.raises(FetchError, match=r"4\.04"):
                await _get(world, api.index_path("acme", MODEL))
            return cloud.state()

    state = asyncio.run(scenario())
    assert state["vendor_cloud"]["releases"] == {} and state["vendor_cloud"]["serving"]


def test_firmware_store_reports_factory_then_installed_and_keeps_one_image(tmp_path: Path) -> None:
    store = FirmwareStore(tmp_path, "1.0.0")
    assert store.installed().version == "1.0.0" and store.installed().digest is None
    first = Manifest.describe("acme", MODEL, "1.1.0", b"one")
    store.install(first, b"one")
    second = Manifest.describe("acme", MODEL, "2.0.0", b"two")
    installed = FirmwareStore(tmp_path, "1.0.0").install(second, b"two")
    assert (installed.version, installed.previous) == ("2.0.0", "1.1.0")
    assert installed.digest == second.digest.hex()
    assert [p.name for p in (tmp_path / "firmware").iterdir()] == ["2.0.0.bin"]
    assert (tmp_path / "firmware" / "2.0.0.bin").read_bytes() == b"two"
