"""The CoAP proxy of a border router: end to end (OSCORE passes through) or hop by hop (DTLS
terminated on both sides). See docs/proxy.md."""
