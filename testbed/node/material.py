"""Where each node finds its credentials inside /etc/testbed (mounted read-only from the run dir).

The host mints these files at `testbed up` ("manufacture" and "sale": testbed.manufacture) and
the node roles read them. One module names every path so both sides agree. Every file here is
mode 0600 on the host; nodes get only their own directory.

Thing (factory identity only; the operational identity is created on the thing's volume):
    identity/device.key.pem, identity/device.key.cbor   P-256 device key (PKCS#8, COSE_Key)
    identity/idevid.crt.der, identity/idevid.crt.pem     IDevID from the vendor CA
    identity/device.ccs.cbor                             the same key as an EDHOC CCS (with kid)
    identity/vendor-ca.crt.der                           its vendor's CA: verifies firmware
                                                         manifests (testbed.pki.firmware)
    identity/device.psk                                  dtls-psk factory key (16 B)
    trust-center.ccs.cbor                                the owning domain's trust center
    trust-center-ca.crt.der                              its domain CA (dtls-cert anchor)
    attributes: serial, trust-center-uri, firmware (factory version), vendor-cloud-uri

Trust center:
    tc/tc.key.cbor, tc/tc.key.pem, tc/tc.ccs.cbor       its EDHOC identity
    domain/domain-ca.key.pem, domain/domain-ca.crt.der   issues LDevIDs, signs CRLs
    domain/owner.pub.pem                                 the domain's owner key (vouchers end here)
    vendors/<vendor>/vendor-ca.crt.der                   anchors of the vendors this domain trusts
    devices/<serial>/voucher.cbor, idevid.crt.der, device.ccs.cbor[, device.psk]
                                                         device records imported with vouchers
    backends/<node>.ccs.cbor                             hosts allowed to fetch operational contexts
    attributes: domain, trusted-vendors

Internet host (backend):
    identity/host.key.cbor, identity/host.key.pem, identity/host.ccs.cbor
    trust-centers/<domain>.ccs.cbor                      one per domain it works for
    attributes: trust-centers = "domain=coap://[addr]:port,..."

Internet host (vendor cloud):
    firmware/<vendor>/<model>/<image>.bin, <image>.manifest.cose
                                                         releases it serves (pki.mint_releases)
"""

from __future__ import annotations

from pathlib import Path

from testbed.contracts.node_config import CONFIG_DIR

IDENTITY = "identity"
DEVICE_KEY_PEM = f"{IDENTITY}/device.key.pem"
DEVICE_KEY_COSE = f"{IDENTITY}/device.key.cbor"
IDEVID_DER = f"{IDENTITY}/idevid.crt.der"
IDEVID_PEM = f"{IDENTITY}/idevid.crt.pem"
DEVICE_CCS = f"{IDENTITY}/device.ccs.cbor"
THING_VENDOR_CA = f"{IDENTITY}/vendor-ca.crt.der"
TRUST_CENTER_CCS = "trust-center.ccs.cbor"
TRUST_CENTER_CA = "trust-center-ca.crt.der"  # the owning domain's CA: anchor for dtls-cert
DEVICE_PSK = f"{IDENTITY}/device.psk"  # dtls-psk factory key (16 B), also in the TC's record

TC_KEY_COSE = "tc/tc.key.cbor"
TC_KEY_PEM = "tc/tc.key.pem"
TC_CCS = "tc/tc.ccs.cbor"
DOMAIN_CA_KEY = "domain/domain-ca.key.pem"
DOMAIN_CA_CERT = "domain/domain-ca.crt.der"
OWNER_PUB = "domain/owner.pub.pem"
VENDORS_DIR = "vendors"  # vendors/<vendor>/vendor-ca.crt.der
VENDOR_CA_CERT = "vendor-ca.crt.der"
DEVICES_DIR = "devices"  # devices/<serial>/{voucher.cbor, idevid.crt.der, device.ccs.cbor}
VOUCHER = "voucher.cbor"
DEVICE_RECORD_IDEVID = "idevid.crt.der"
DEVICE_RECORD_CCS = "device.ccs.cbor"
DEVICE_RECORD_PSK = "device.psk"  # dtls-psk things only: the factory PSK, sold with the voucher
PSK_BYTES = 16  # RFC 7925 4.2: at least 128 bits of entropy
# Optional: the name the owner knows the thing by (its planned node name), bound to the serial.
DEVICE_RECORD_NAME = "name.txt"
BACKENDS_DIR = "backends"  # backends/<node>.ccs.cbor

HOST_KEY_COSE = f"{IDENTITY}/host.key.cbor"
HOST_KEY_PEM = f"{IDENTITY}/host.key.pem"
HOST_CCS = f"{IDENTITY}/host.ccs.cbor"
TRUST_CENTERS_DIR = "trust-centers"  # trust-centers/<domain>.ccs.cbor

FIRMWARE_DIR = "firmware"  # firmware/<vendor>/<model>/<image><suffix>
FIRMWARE_IMAGE_SUFFIX = ".bin"
FIRMWARE_MANIFEST_SUFFIX = ".manifest.cose"

COAP_PORT = 5683


def firmware_files(vendor: str, model: str, image: str) -> tuple[str, str]:
    """(image file, manifest file) of one release under the vendor cloud's material root."""
    base = f"{FIRMWARE_DIR}/{vendor}/{model}/{image}"
    return base + FIRMWARE_IMAGE_SUFFIX, base + FIRMWARE_MANIFEST_SUFFIX


def path(name: str, root: Path = CONFIG_DIR) -> Path:
    return root / name


def parse_trust_centers(value: str) -> dict[str, str]:
    """'facility=coap://[fd00::1]:5683,hvac=coap://[...]' -> {domain: uri}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        domain, _, uri = item.partition("=")
        if not domain or not uri:
            raise ValueError(f"trust-centers entry {item!r} is not DOMAIN=URI")
        out[domain] = uri
    return out
