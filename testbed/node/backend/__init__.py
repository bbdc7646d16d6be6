"""The backend service on an Internet host: reads and commands things end to end.

directory  the trust centers' /things listings, over EDHOC + OSCORE with the host key
peers      one thing the backend talks to: its OSCORE context (persistent), requests
probes     the attacker's two capabilities: an unprotected request, a replayed datagram
service    Backend: polling, reading, the control actions, /state
metrics    its Prometheus metrics
"""
