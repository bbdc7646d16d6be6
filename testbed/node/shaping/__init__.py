"""IP link impairments of a border router (``backbone``, ``internet``), netem semantics.

    impairment   the parameters (delay, jitter, loss, Gilbert-Elliott, rate, duplicate, reorder,
                 corrupt, limit) in SI units, validated; the planner's links-<name> attributes
    netem        kernel implementation: tc netem on egress, and on an IFB for ingress
    model        netem's per-packet decisions as a pure seeded model (user-space shaper)
    userspace    user-space implementation: tc redirects to a TAP/TUN pair -> model -> sent on
    runner       how commands run (or are recorded, for the QEMU test and the unit tests)
    manager      per node: picks the implementation, resolves devices, actions, metrics
    aircapture   the ``capture`` action: a radio PAN's frames on the air as a pcap

A link is the router's interface on that network, impaired in both directions alike.
"""
