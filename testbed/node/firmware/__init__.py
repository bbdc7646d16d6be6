"""Firmware: the vendor cloud that serves signed releases, and the thing that installs them.

api      the vendor cloud's CoAP paths and content formats (shared by both sides)
cloud    the vendor-cloud host's server: releases from its material, block-wise over CoAP
client   the thing's fetch: manifest, then at most the manifest's size of image, block by block
updater  the thing's check-and-install (signature, vendor/model, version, digest) and the
         record of what is installed on its state volume

Manifests and releases themselves are testbed.pki.firmware (the host mints them).
"""
