"""The vendor cloud's server: the releases in its material, served over plain CoAP.

Releases are read once at start from ``firmware/<vendor>/<model>/<image>.{bin,manifest.cose}``
(testbed.node.material) and held in memory (a few KB each). The cloud does not look into them:
it serves exactly what the vendor published, tampered variants included, because deciding what
to install is the thing's job and what the experiments test.

Metrics:
    testbed_vendor_cloud_requests_total{kind}   index, manifest, image: representations
                                                rendered (one per transfer: aiocoap serves
                                                the later blocks of a transfer from its cache)
    testbed_vendor_cloud_releases               releases served
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
import cbor2
from aiocoap import resource
from prometheus_client import CollectorRegistry

from testbed.node import declared_metrics as declared
from testbed.node import material as M
from testbed.node.coap.transport import bound_port, create_context
from testbed.node.errors import ConfigError, ServeError
from testbed.node.firmware import api
from testbed.pki.firmware import check_image_name


@dataclass(frozen=True)
class ServedRelease:
    vendor: str
    model: str
    name: str
    image: bytes
    manifest: bytes


def load_releases(material_root: Path) -> list[ServedRelease]:
    """Every complete release under the material's firmware directory (sorted)."""
    root = material_root / M.FIRMWARE_DIR
    releases: list[ServedRelease] = []
    if not root.is_dir():
        return releases
    for image_file in sorted(root.glob(f"*/*/*{M.FIRMWARE_IMAGE_SUFFIX}")):
        vendor, model = image_file.parent.parent.name, image_file.parent.name
        name = image_file.name.removesuffix(M.FIRMWARE_IMAGE_SUFFIX)
        manifest_file = image_file.with_name(name + M.FIRMWARE_MANIFEST_SUFFIX)
        try:
            check_image_name(name)
            releases.append(
                ServedRelease(
                    vendor, model, name, image_file.read_bytes(), manifest_file.read_bytes()
                )
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"vendor cloud release {image_file} is unusable: {exc}",
                "each <image>.bin needs its <image>.manifest.cose (testbed.manufacture)",
            ) from exc
    return releases


class _Blob(resource.Resource):  # type: ignore[misc]
    """GET of fixed bytes; aiocoap's Resource cuts the Block2 pieces the client asks for."""

    def __init__(self, body: bytes, content_format: int, on_request: Callable[[], None]) -> None:
        super().__init__()
        self.body = body
        self.content_format = content_format
        self.on_request = on_request

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.on_request()
        return aiocoap.Message(payload=self.body, content_format=self.content_format)


class VendorCloud:
    def __init__(
        self,
        material_root: Path,
        bind: tuple[str, int],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.material_root = material_root
        self.bind = bind
        self.releases: list[ServedRelease] = []
        self._coap: aiocoap.Context | None = None
        registry = registry or CollectorRegistry()
        self.requests = declared.counter("testbed_vendor_cloud_requests", registry)
        self.served = declared.gauge("testbed_vendor_cloud_releases", registry)

    def _counter(self, kind: str) -> Callable[[], None]:
        child = self.requests.labels(kind)
        return child.inc  # type: ignore[no-any-return]

    def build_site(self) -> resource.Site:
        site = resource.Site()
        index: dict[tuple[str, str], list[str]] = {}
        for r in self.releases:
            index.setdefault((r.vendor, r.model), []).append(r.name)
            for part, body, cf in (
                (api.MANIFEST, r.manifest, api.CF_COSE_SIGN1),
                (api.IMAGE, r.image, api.CF_OCTET_STREAM),
            ):
                path = api.release_path(r.vendor, r.model, r.name, part)
                site.add_resource(path, _Blob(body, cf, self._counter(part)))
        for (vendor, model), names in index.items():
            body = cbor2.dumps(sorted(names), canonical=True)
            site.add_resource(
                api.index_path(vendor, model), _Blob(body, api.CF_CBOR, self._counter("index"))
            )
        return site

    async def start(self) -> None:
        self.releases = load_releases(self.material_root)
        self.served.set(len(self.releases))
        try:
            self._coap = await create_context(
                site=self.build_site(), bind=self.bind, loggername="vendor-cloud"
            )
        except OSError as exc:
            host, port = self.bind
            raise ServeError(
                f"vendor cloud cannot serve CoAP on [{host}]:{port}: {exc.strerror or exc}",
                "another process holds the port; check attributes coap-bind and coap-port",
            ) from exc

    async def stop(self) -> None:
        if self._coap is not None:
            await self._coap.shutdown()
            self._coap = None

    @property
    def port(self) -> int:
        if self._coap is None:
            raise RuntimeError("vendor cloud not started")
        return bound_port(self._coap)

    def state(self) -> dict[str, Any]:
        models: dict[str, list[str]] = {}
        for r in self.releases:
            models.setdefault(f"{r.vendor}/{r.model}", []).append(r.name)
        return {
            "serving": self._coap is not None,
            "port": None if self._coap is None else self.port,
            "releases": models,
        }
