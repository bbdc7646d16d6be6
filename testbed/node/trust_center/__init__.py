"""The trust center of one operator domain, node side: admission, LDevIDs, OSCORE contexts.

trust        what the trust center signs with and trusts (EDHOC identity, domain CA,
             owner key, vendor CAs, backend credentials), read from /etc/testbed
devices      device records (voucher, IDevID, CCS) by serial and by EDHOC kid; import
registry     the durable registry (SQLite, WAL, synchronous=FULL); schema: its tables, rows
contexts     OSCORE context parameters handed out per thing and generation
admission    the admission policy: one RefusalReason per failed check, in a fixed order
revocation   the CRL, rebuilt from the registry when it changed
bootstraps   server-side cost of each bootstrap, seen on the socket (a DatagramSink)
metrics      Prometheus metrics of the role
enrollment   the procedures behind the CoAP API (enroll, contexts, things)
resources    the aiocoap resources of enrollment_api, thin adapters over ``enrollment``
service      TrustCenter: loads, opens, serves, and runs the control actions
"""
