"""devn-pcap: a legacy (io-net style) driver whose "wire" is a pair of pcap files.

It replays the Ethernet frames of ``in=`` into the stack and writes every frame the stack
transmits to ``out=``, so a capture made elsewhere (or crafted with scapy) can be played
against the stack and its answers inspected offline. It is written against the old io-net
interface that ``shim.py`` adapts (``init``/``rx_down``/``pulse``/``shutdown``), not the
native one, and therefore shows up as ``enN`` with the SHIM flag and a ``/dev/io-net/enN``
node.

Options (parsed here, io-net style; anything else - ``name=``/``unit=`` included - is an
"unknown option" and the driver does not load):

``in=PATH``     classic pcap (link type 1, Ethernet) to replay; optional.
``out=PATH``    pcap file to create (truncated) with the transmitted frames; optional.
``mac=MAC``     our station address (default 02:00:00:00:00:01, predictable on purpose:
                replayed captures are addressed to it).
``mtu=N``       default 1500.
``delay=MS``    wait this long after the interface comes up before replaying (default 0).
``timing=1``    keep the capture's inter-frame gaps (default: as fast as the pulse allows).
``batch=N``     frames handed up per pulse (default 64); ``pulse=MS`` its period (default 5).

Replay starts when the interface is brought up (``ifconfig enN ... up``) - frames given to
a down interface would only be counted as drops - and happens once.
"""

import errno

from ..stack import slog
from .pcapfile import PcapError, PcapReader, PcapWriter

KNOWN = ("in", "out", "mac", "mtu", "delay", "timing", "batch", "pulse")


def _getsubopts(text: str) -> list[tuple[str, str | None]]:
    """io-net drivers split their option string with getsubopt(3): ``k=v`` or ``k``."""
    items = []
    for part in text.split(","):
        part = part.strip()
        if part:
            key, sep, value = part.partition("=")
            items.append((key, value if sep else None))
    return items


class PcapLegacyDriver:
    description = "pcap file replay (io-net)"

    def __init__(self):
        self.ion = None
        self.reader: PcapReader | None = None
        self.writer: PcapWriter | None = None
        self._in = self._out = None
        self.lan = -1
        self.delay = 0.0
        self.timing = False
        self.batch = 64
        self.start: float | None = None
        self.first_ts: float | None = None
        self.next_frame = None
        self.replayed = 0
        self.written = 0

    # -- io-net entry points --------------------------------------------------------------------

    def init(self, ion, options: str) -> int:
        self.ion = ion
        opts = {}
        for key, value in _getsubopts(options):
            if key not in KNOWN:
                ion.log(slog.ERROR, f"unknown option {key!r}")
                return errno.EINVAL
            opts[key] = value
        try:
            mac = self._mac(opts.get("mac"))
            mtu = self._int(opts, "mtu", 1500, 68, 65535)
            self.delay = self._int(opts, "delay", 0, 0, 3_600_000) / 1000.0
            timing = opts.get("timing", "0")          # a bare "timing" is on
            self.timing = timing is None or timing not in ("0", "no", "off")
            self.batch = self._int(opts, "batch", 64, 1, 4096)
            pulse = self._int(opts, "pulse", 5, 1, 10000)
        except ValueError as exc:
            ion.log(slog.ERROR, str(exc))
            return errno.EINVAL
        try:
            if opts.get("in"):
                self._in = open(opts["in"], "rb")
                self.reader = PcapReader(self._in)
            if opts.get("out"):
                self._out = open(opts["out"], "wb")
                self.writer = PcapWriter(self._out)
                self.writer.flush()
        except OSError as exc:
            ion.log(slog.ERROR, f"{exc.filename}: {exc.strerror}")
            self.shutdown()
            return exc.errno or errno.EIO
        except PcapError as exc:
            ion.log(slog.ERROR, f"{opts['in']}: {exc}")
            self.shutdown()
            return errno.EINVAL
        source = opts.get("in") or "nothing"
        self.lan = ion.reg(mac or bytes.fromhex("020000000001"), mtu, f"pcap replay of {source}")
        if self.reader is not None:
            ion.set_pulse(pulse)
        return 0

    def rx_down(self, lan: int, frame: bytes) -> int:
        if lan != self.lan:
            return errno.ENXIO
        if self.writer is not None:
            try:
                self.writer.write(frame)
                self.writer.flush()   # readers of out= see each frame as soon as it is sent
            except OSError as exc:
                return exc.errno or errno.EIO
        self.written += 1
        return 0

    def pulse(self, now: float) -> None:
        ion = self.ion
        if self.reader is None or not ion.is_up(self.lan):
            return
        if self.start is None:
            self.start = now + self.delay
        if now < self.start:
            return
        for _ in range(self.batch):
            if self.next_frame is None:
                self.next_frame = next(self.reader, None)
                if self.next_frame is None:
                    self._finished()
                    return
            ts, frame = self.next_frame
            if self.first_ts is None:
                self.first_ts = ts
            if self.timing and ts - self.first_ts > now - self.start:
                return    # not yet: the capture had a gap here
            ion.tx_up(self.lan, frame)
            self.replayed += 1
            self.next_frame = None

    def shutdown(self) -> None:
        for f in (self._in, self._out):
            if f is not None:
                f.close()
        self._in = self._out = None
        self.reader = self.writer = None

    # -- helpers ------------------------------------------------------------------------------

    def _finished(self) -> None:
        tail = " (truncated file)" if self.reader.truncated else ""
        self.ion.log(slog.INFO, f"replayed {self.replayed} frames{tail}")
        self.ion.set_pulse(None)
        self._in.close()
        self._in = None
        self.reader = None

    @staticmethod
    def _int(opts: dict, key: str, default: int, low: int, high: int) -> int:
        raw = opts.get(key)
        if raw is None:
            return default
        try:
            value = int(raw, 0)
        except ValueError:
            raise ValueError(f"option {key}={raw}: not a number") from None
        if not low <= value <= high:
            raise ValueError(f"option {key}={raw}: out of range {low}..{high}")
        return value

    @staticmethod
    def _mac(text: str | None) -> bytes | None:
        if text is None:
            return None
        raw = text.replace(":", "").replace("-", "")
        try:
            mac = bytes.fromhex(raw)
        except ValueError:
            mac = b""
        if len(mac) != 6 or mac[0] & 1:
            raise ValueError(f"option mac={text}: not a unicast MAC address")
        return mac


io_net_dll_entry = PcapLegacyDriver
