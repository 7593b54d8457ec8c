"""What one stack instance is: its variant's feature set and the ``-p tcpip`` options.

Both are frozen values built before the stack starts (``iopkt_fs.options`` parses the
command line into them); the core reads them, never the command line.
"""

import attrs


@attrs.frozen
class Variant:
    """io-pkt's variants differ only in what is compiled in (reference/qnx.md §5)."""

    name: str            # the command name: io-pkt-v4, io-pkt-v4-hc, io-pkt-v6-hc
    inet6: bool          # AF_INET6 node 24, forward6, ::1 on lo0
    crypto: bool         # ipsec, nocryptodev, pfil_ipsec, /dev/crypto
    extras: bool         # 802.11, bridge, gre, gif, multicast routing (the "hc" builds)

    @property
    def lsm_protocols(self) -> tuple[str, ...]:
        # Documented protocol modules per variant (DOC-IOPKT-66).
        return ("pf-v6",) if self.inet6 else ("pf-v4", "slip")


V4 = Variant("io-pkt-v4", inet6=False, crypto=False, extras=False)
V4_HC = Variant("io-pkt-v4-hc", inet6=False, crypto=True, extras=True)
V6_HC = Variant("io-pkt-v6-hc", inet6=True, crypto=True, extras=True)
VARIANTS = {v.name: v for v in (V4, V4_HC, V6_HC)}


@attrs.frozen
class StackConfig:
    """The tcpip options the stack reads, with io-pkt's defaults (reference/qnx.md §1.3).

    Only options with an effect on Linux have a field; the rest are parsed, clamped and
    logged as io-pkt does (``iopkt_fs.options.TCPIP_OPTIONS``) and kept in
    ``TcpipResult.values``.
    """

    variant: Variant = V6_HC
    instance: int = 0
    prefix: str = ""
    forward: bool = False
    fastforward: bool = True
    forward6: bool = False
    ipsec: bool = False
    random: bool = False          # OS randomness instead of the seeded generator
    enmap: bool = True
    reuseport_unicast: bool = False
    somaxconn: int = 128
    threads_min: int = 15
    threads_max: int = 200
    # Packet buffers (stack/mbuf.py).
    cache: bool = True
    mbuf_cache: int = 128
    pkt_cache: int = 64
    mclbytes: int = 2048
    pagesize: int = 131072
    nmbclusters: int | None = None   # the pool's bound (None: 64 MiB of clusters; mbuf.py)
    # Cloned pseudo-interfaces (stack/iface/if_tun.py, if_tap.py).
    num_tun_control_interface: int = 4   # P/dev/tun0..N-1 at start
    num_tap_interface: int = 5           # at most this many tapN
    seed: int | None = None       # ours: pins the stack's RNG (tests, reproducible runs)
