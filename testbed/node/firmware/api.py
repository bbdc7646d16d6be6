"""The vendor cloud's CoAP API (plain CoAP: a release's integrity is its signed manifest).

    GET /fw/<vendor>/<model>                    2.05 CBOR array of the image names served
    GET /fw/<vendor>/<model>/<image>/manifest   2.05 COSE_Sign1 manifest (content-format 18)
    GET /fw/<vendor>/<model>/<image>/image      2.05 the image (42), block-wise (Block2) at the
                                                size the client asks for in its first request

4.04 for anything not served. An image name is the version ("2.0.0") or a variant of it
("2.0.0-tampered", testbed.pki.firmware). Transport security would add nothing a thing relies
on (it verifies the manifest) and would hide the update's cost from the experiment's captures,
so there is none, as with SUIT over plain CoAP.
"""

from __future__ import annotations

ROOT = "fw"
MANIFEST = "manifest"
IMAGE = "image"

CF_COSE_SIGN1 = 18  # application/cose; cose-type="cose-sign1"
CF_OCTET_STREAM = 42
CF_CBOR = 60

# 64-byte blocks: one block and its headers fit one 127-byte 802.15.4 frame after 6LoWPAN
# compression, so a lost frame costs one block, not a reassembly of several fragments.
DEFAULT_BLOCK_SIZE = 64
BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def index_path(vendor: str, model: str) -> list[str]:
    return [ROOT, vendor, model]


def release_path(vendor: str, model: str, image: str, part: str) -> list[str]:
    return [ROOT, vendor, model, image, part]


def size_exponent(block_size: int) -> int:
    """CoAP's SZX for a block size (16 * 2**szx); ValueError for other sizes."""
    if block_size not in BLOCK_SIZES:
        raise ValueError(f"block size {block_size} is not one of {BLOCK_SIZES}")
    return BLOCK_SIZES.index(block_size)
