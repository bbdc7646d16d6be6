"""The Ansible phases of a run's things (host side): the phases of a thing's lifecycle
(testbed.node.lifecycle holds its states) as playbooks run from the host.

    collections.py  community.docker & co. without Galaxy: from the ansible wheel, cached
    inventory.py    the Ansible inventory of a running testbed, derived from Docker labels
    runner.py       runs a phase's playbook through ansible-runner; per-host outcomes
    records.py      RUN/phases.jsonl: one JSON line per phase run (dashboards mark phases)
    transfer.py     ownership transfer: the current owner extends a thing's voucher

The playbooks live in ``playbooks/``; the modules they call (collection ``testbed.iot``) in
``playbooks/collections/ansible_collections/testbed/iot``. They run inside the nodes and talk
to each node's local control endpoint.
"""
