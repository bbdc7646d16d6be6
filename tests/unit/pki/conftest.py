"""Shared PKI fixtures. Objects are frozen, so one instance per session is safe and fast."""

from __future__ import annotations

import pytest

from testbed.pki import DeviceIdentity, Domain, Vendor, manufacture, new_domain, new_vendor


@pytest.fixture(scope="session")
def vendor() -> Vendor:
    return new_vendor("acme")


@pytest.fixture(scope="session")
def other_vendor() -> Vendor:
    return new_vendor("globex")


@pytest.fixture(scope="session")
def domain() -> Domain:
    return new_domain("hvac-contractor")


@pytest.fixture(scope="session")
def next_domain() -> Domain:
    return new_domain("building-owner")


@pytest.fixture(scope="session")
def device(vendor: Vendor) -> DeviceIdentity:
    return manufacture(vendor, "SN-0001", "thermostat-3")
