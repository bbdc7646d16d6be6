"""Bootstrap profile registry: the thing's ``profile`` attribute -> a profile instance.

The names are the contract testbed.contracts.profiles (``PROFILE_NAMES``: the topology schema
accepts exactly these, the planner passes the name on); the thing builds the profile from here.
A new profile is a module under testbed.node.bootstrap, its name in the contract and one entry in
``PROFILES``
(``edhoc-oscore``; ``dtls-cert`` and ``dtls-psk`` in ``bootstrap.dtls_coaps``). A name
that is not here is a configuration error the node reports at start (exit 2), not a bootstrap
failure: retrying cannot make a missing implementation appear. Factories import their profile
module when called, so that the host can read the names without the profiles' dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import quote

from testbed.node.bootstrap.profile import BootstrapProfile
from testbed.node.errors import ConfigError

# What the thing tells the trust center about itself at enrollment, as Uri-Query items
# (enrollment_api Q_NAME, Q_DEVICE_CLASS, Q_PORT), so that /things can list it.
Report = Mapping[str, str]


def _edhoc_oscore(report: Report, renewal: bool = False) -> BootstrapProfile:
    from testbed.node.bootstrap.edhoc_oscore import EdhocOscoreProfile
    from testbed.node.enrollment_api import EST_SIMPLE_ENROLL, EST_SIMPLE_REENROLL, OSCORE_CONFIG

    path = EST_SIMPLE_REENROLL if renewal else EST_SIMPLE_ENROLL
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in report.items() if v)
    # The thing needs its OSCORE contexts as much as its LDevID: fetch them over the same
    # EDHOC-derived context (one more round trip, no second handshake). A renewal (/sren)
    # runs the same way: a fresh EDHOC with the factory key, because that is the credential
    # the trust center authenticates things by; the thing keeps no channel to it between
    # enrollments, and its granted contexts are for the backend, not the trust center.
    return EdhocOscoreProfile(
        enroll_path=f"{path}?{query}" if query else path,
        config_path=OSCORE_CONFIG,
    )


def _dtls(mode: str) -> Callable[[Report, bool], BootstrapProfile]:
    def make(report: Report, renewal: bool = False) -> BootstrapProfile:
        from testbed.node.bootstrap.dtls_coaps import DtlsProfile
        from testbed.node.enrollment_api import (
            EST_SIMPLE_ENROLL,
            EST_SIMPLE_REENROLL,
            OSCORE_CONFIG,
        )

        path = EST_SIMPLE_REENROLL if renewal else EST_SIMPLE_ENROLL
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in report.items() if v)
        # The same two requests as edhoc-oscore, inside one DTLS session.
        return DtlsProfile(mode, f"{path}?{query}" if query else path, config_path=OSCORE_CONFIG)

    return make


PROFILES: dict[str, Callable[[Report, bool], BootstrapProfile]] = {
    "edhoc-oscore": _edhoc_oscore,
    "dtls-cert": _dtls("cert"),
    "dtls-psk": _dtls("psk"),
}


def profile_for(
    name: str, report: Report | None = None, *, renewal: bool = False
) -> BootstrapProfile:
    """The profile ``name``; ``renewal``: its LDevID renewal (EST /sren) variant."""
    try:
        factory = PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"bootstrap profile {name!r} is not available in this node image",
            "attribute 'profile' must be one of: " + ", ".join(PROFILES),
        ) from None
    return factory(report or {}, renewal)
