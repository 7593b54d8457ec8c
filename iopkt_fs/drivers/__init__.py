"""Drivers: devnp-* native drivers, the devn-* legacy shim, and the registry that finds them.

A driver is the only place besides the runtime and the resmgr where trio appears: it owns
a file descriptor (TAP, UDP socket, AF_PACKET ...) and a receive task. See ``base``.
"""
