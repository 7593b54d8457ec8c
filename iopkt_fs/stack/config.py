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
    """The tcpip options in force, with io-pkt's defaults (reference/qnx.md §1.3)."""

    variant: Variant = V6_HC
    instance: int = 0
    prefix: str = ""
    forward: bool = False
    fastforward: bool = True
    forward6: bool = False
    ipsec: bool = False
    cryptodev: bool = True
    pfil_ipsec: bool = False
    random: bool = False          # OS randomness instead of the seeded generator
    enmap: bool = True
    reuseport_unicast: bool = False
    confstr_monitor: bool = False
    strict_ts: bool = False
    so_txprio_enable: bool = False
    cache: bool = True
    bigpage_strict: bool = False
    mbuf_cache: int = 128
    pkt_cache: int = 64
    mtag_cache: int = 128
    mclbytes: int = 2048
    pagesize: int = 131072
    pkt_typed_mem: str | None = None
    recv_ctxt: int = 135168
    reply_ctxt: int = 90
    rx_prio: int = 21
    timer_pulse_prio: int = 21
    somaxconn: int = 128
    stacksize: int = 4096
    bigstack: int = 131072
    stackguard: bool = False
    threads_min: int = 15
    threads_max: int = 200
    threads_incr: int = 25
    num_tap_interface: int = 5
    num_tun_control_interface: int = 4
    timertol: int | None = None
    tickstop_min: int = 0
    tickstop_max: int = 0
    rgroup_allowed: int | None = None
    seed: int | None = None       # ours: pins the stack's RNG (tests, reproducible runs)
