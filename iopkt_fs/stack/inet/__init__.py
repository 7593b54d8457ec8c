"""IPv4 (the ``inet`` family): input/output, ARP, ICMP, fragments, forwarding, UDP demux.

``Ipv4Layer`` (ipv4.py: Ethernet demux, input, addresses, hooks) is the one object the
stack builds; it extends the mixins ``Ipv4Output`` (output.py), ``Ipv4Forward``
(forward.py) and ``ArpInput`` (arp.py), the shape inet6/ has, and owns the route table
(iface/route.py), the ARP cache (iface/neighbor.py), the reassembly queues (reass.py),
ICMP (icmp.py), IGMP (igmp.py), UDP (socket/udp.py) and the counters (stats.py).
Sans-IO like the rest of ``stack/``: time is the ``now`` argument, randomness ``stack.rng``.
"""
