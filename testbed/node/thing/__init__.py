"""The thing's security functions: bootstrap to operational, then protected resources.

profiles      bootstrap profile registry (attribute ``profile`` -> profile)
bootstrapper  attempts with backoff: installed -> bootstrapping -> operational | failed
store         what bootstrapping leaves on the state volume (key, LDevID, contexts)
contexts      OSCORE contexts as aiocoap context directories (persistent replay window)
catalog       device classes, their resources and payload formats (shared with the backend)
physics       the simulated world the resources report
resources     the aiocoap resources, request counting, the 4.01 guard
oscore_server the CoAP server that serves them only through the granted context
metrics       the thing's Prometheus metrics
"""
