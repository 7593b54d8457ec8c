"""IPv4 (the ``inet`` family): input/output, ARP, ICMP, fragments, forwarding, UDP demux.

``Ipv4Layer`` (ipv4.py) is the one object the stack builds; it owns the route table
(iface/route.py), the ARP cache (iface/neighbor.py), the reassembly queues (reass.py),
ICMP (icmp.py), UDP (socket/udp.py) and the counters (stats.py). Sans-IO like the rest
of ``stack/``: time is the ``now`` argument, randomness ``stack.rng``.
"""
