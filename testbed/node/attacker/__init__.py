"""The attacker host: attacks started and stopped by name through the control endpoint.

    attack-start {"attack": NAME, ...parameters}   -> {"attack", "params", "running": true}
    attack-stop {"attack": NAME}                    -> {"attack", "counters": {...}}
    attack-status {}                                -> every attack with its counters

Every attack counts what became of its packets: sent, answered (the target replied with
success), refused (the target replied with an error); exported as
``testbed_attack_packets_total{attack,outcome}`` and ``testbed_attack_running{attack}``.
"""
