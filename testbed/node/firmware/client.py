"""The thing's side of a download: manifest first, then the image, block by block.

Block-wise transfer is driven here rather than by aiocoap's automatic assembly, for two
reasons: the thing stops as soon as the cloud sends more than the (already verified) manifest
announced, so a hostile or broken cloud cannot fill its flash; and the blocks are counted,
which is the cost the experiments compare across link qualities.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiocoap
from aiocoap import error
from aiocoap.optiontypes import BlockOption

from testbed.node.firmware import api

MAX_MANIFEST = 1024  # a manifest is ~150 bytes; anything this large is not one


class FetchError(Exception):
    """The release could not be fetched (not served, timeout, network, oversized answer)."""


@dataclass
class Transfer:
    """What fetching cost: requests (one per block) and payload bytes received."""

    requests: int = 0
    bytes: int = 0


def uri_of(base: str, path: list[str]) -> str:
    # aiocoap percent-encodes each Uri-Path segment of a URI it parses; ours are plain names.
    return base.rstrip("/") + "/" + "/".join(path)


async def get_blockwise(
    coap: aiocoap.Context,
    uri: str,
    *,
    limit: int,
    block_size: int,
    deadline: float,
    transfer: Transfer,
) -> bytes:
    """GET ``uri`` in Block2 pieces of ``block_size`` (or smaller, if the server says so).

    FetchError if the answer is not 2.05, exceeds ``limit`` bytes, is out of order, or the
    monotonic ``deadline`` passes.
    """
    szx = api.size_exponent(block_size)
    data = bytearray()
    number = 0
    while True:
        message = aiocoap.Message(code=aiocoap.GET, uri=uri)
        message.opt.block2 = BlockOption.BlockwiseTuple(number, False, szx)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"{uri}: not complete before the deadline ({len(data)} bytes)")
        try:
            response = await asyncio.wait_for(
                coap.request(message, handle_blockwise=False).response, remaining
            )
        except (TimeoutError, error.TimeoutError) as exc:
            raise FetchError(f"{uri}: timeout after {len(data)} bytes") from exc
        except (OSError, error.Error) as exc:
            raise FetchError(f"{uri}: {exc!r}") from exc
        transfer.requests += 1
        transfer.bytes += len(response.payload)
        if response.code != aiocoap.CONTENT:
            raise FetchError(f"{uri}: {response.code}")
        block = response.opt.block2
        if block is None:  # small enough to come whole
            if data:
                raise FetchError(f"{uri}: a whole representation after block {number - 1}")
            data += response.payload
        else:
            if block.start != len(data):
                raise FetchError(f"{uri}: block at {block.start}, expected {len(data)}")
            data += response.payload
        if len(data) > limit:
            raise FetchError(f"{uri}: more than the {limit} bytes expected")
        if block is None or not block.more:
            return bytes(data)
        # The server may have answered with smaller blocks: continue at its size.
        szx = block.size_exponent
        number = len(data) // block.size
