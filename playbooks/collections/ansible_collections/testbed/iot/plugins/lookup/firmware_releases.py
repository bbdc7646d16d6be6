# Copyright: the IoT security testbed authors. Apache-2.0.
from __future__ import annotations

DOCUMENTATION = r"""
name: firmware_releases
short_description: Firmware versions a vendor cloud publishes for a model, oldest first
version_added: "0.1.0"
description:
  - Lists, on the controller, the genuine firmware releases that the run's vendor cloud serves
    for C(VENDOR/MODEL) - the images under C(RUN/nodes/*/firmware/VENDOR/MODEL/) whose name is a
    plain version (deliberately broken variants such as C(2.0.0-tampered) are left out).
  - Sorted by version, so C(| last) is the newest.
options:
  _terms:
    description: C(VENDOR/MODEL) pairs.
    required: true
  required:
    description:
      - Fail when no vendor cloud of the run publishes firmware for a pair. With V(false) the
        pair contributes nothing (the caller says what it skips and why).
    type: bool
    default: true
  run_dir:
    description: The run directory on the controller.
    type: path
    vars:
      - name: testbed_run_dir
"""

EXAMPLES = r"""
- name: Update to the newest release of the thing's model
  testbed.iot.thing:
    firmware: "{{ lookup('testbed.iot.firmware_releases', testbed_vendor ~ '/' ~ testbed_model,
                  wantlist=true) | last }}"
"""

RETURN = r"""
_raw:
  description: Versions, oldest first (one flat list for all terms).
  type: list
  elements: str
"""

import glob  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleError  # type: ignore[import-untyped]  # noqa: E402
from ansible.plugins.lookup import LookupBase  # type: ignore[import-untyped]  # noqa: E402

VERSION = re.compile(r"\d{1,6}(\.\d{1,6}){0,3}")
IMAGE_SUFFIX = ".bin"


def version_key(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def releases(run_dir: str, vendor: str, model: str) -> list[str]:
    for name in (vendor, model):
        if not name or "/" in name or name.startswith("."):
            raise AnsibleError(f"firmware_releases: {name!r} is not a vendor or model name")
    pattern = os.path.join(run_dir, "nodes", "*", "firmware", vendor, model, "*" + IMAGE_SUFFIX)
    found = {os.path.basename(path)[: -len(IMAGE_SUFFIX)] for path in glob.glob(pattern)}
    return sorted((v for v in found if VERSION.fullmatch(v)), key=version_key)


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        run_dir = self.get_option("run_dir")
        required = bool(self.get_option("required"))
        if not run_dir:
            raise AnsibleError("firmware_releases: no run directory (variable testbed_run_dir)")
        out: list[str] = []
        for term in terms:
            vendor, _, model = str(term).partition("/")
            found = releases(str(run_dir), vendor, model)
            if not found and required:
                raise AnsibleError(
                    f"firmware_releases: no vendor cloud of this run publishes firmware for "
                    f"{vendor}/{model} (does the topology have a vendor-cloud host?)"
                )
            out.extend(found)
        return out
