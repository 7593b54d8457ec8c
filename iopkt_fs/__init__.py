"""iopkt_fs: QNX's io-pkt networking manager rebuilt for Linux.

Layers (see docs/architecture.md):

* ``stack``    the sans-IO protocol engine; never imports trio, never reads a clock.
* ``drivers``  devnp-* drivers, the devn-* legacy shim and the driver registry.
* ``resmgr``   the pyfuse3 adapter that serves the stack as files under a prefix.
* ``cli``      io-pkt-v4/v4-hc/v6-hc and the companion tools.
"""

__version__ = "0.1.0"
