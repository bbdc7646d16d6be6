"""CoAP secure channels for nodes: EDHOC (RFC 9528) + OSCORE (RFC 8613) on aiocoap.

credentials    keys and CCS credentials, the peer table
edhoc_server   responder site, authenticated peer of a request, 4.01 for plain requests
sessions       the responder's connection identifiers and contexts (bounded, LRU)
edhoc_client   initiator: one EDHOC, then OSCORE requests
transport      aiocoap context whose UDP socket reports every datagram
classify       names the CoAP/EDHOC/OSCORE message in a datagram, for accounting
"""
