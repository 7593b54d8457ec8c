"""Classic libpcap files (not pcapng), read and written with struct.

Format (pcap-savefile(5), draft-ietf-opsawg-pcap): a 24-byte global header

    magic u32 | version_major u16 | version_minor u16 | thiszone i32 | sigfigs u32 |
    snaplen u32 | network (link type) u32

then records of a 16-byte header ``ts_sec u32 | ts_frac u32 | incl_len u32 | orig_len u32``
followed by ``incl_len`` bytes. The magic's byte order says the file's byte order;
0xa1b2c3d4 means microsecond fractions, 0xa1b23c4d nanoseconds. Link type 1 is Ethernet.
Used by devn-pcap; small enough that the capture files of the filesystem can use it too.
"""

import struct
import time

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
PCAPNG_MAGIC = 0x0A0D0D0A     # a pcapng Section Header Block: a different format
LINKTYPE_ETHERNET = 1
MAX_RECORD = 262144           # libpcap's MAXIMUM_SNAPLEN: anything larger is corruption
GLOBAL = struct.Struct("IHHiIII")
RECORD = struct.Struct("IIII")


class PcapError(ValueError):
    """The file is not a classic pcap we can read (bad magic, pcapng, wrong link type)."""


class PcapReader:
    """Iterate ``(timestamp_seconds, frame_bytes)``; stops cleanly at a truncated tail."""

    def __init__(self, f, *, linktype: int | None = LINKTYPE_ETHERNET):
        self.f = f
        head = f.read(GLOBAL.size)
        if len(head) < GLOBAL.size:
            raise PcapError("file too short for a pcap header")
        (magic,) = struct.unpack_from("<I", head)
        if magic in (MAGIC_US, MAGIC_NS):
            self.order = "<"
        elif magic in (int.from_bytes(MAGIC_US.to_bytes(4, "little"), "big"),
                       int.from_bytes(MAGIC_NS.to_bytes(4, "little"), "big")):
            self.order = ">"
            magic = int.from_bytes(magic.to_bytes(4, "little"), "big")
        elif magic == PCAPNG_MAGIC:
            raise PcapError("pcapng is not supported; convert with: editcap -F pcap IN OUT")
        else:
            raise PcapError(f"not a pcap file (magic {magic:#010x})")
        self.nanos = magic == MAGIC_NS
        fields = struct.unpack(self.order + GLOBAL.format, head)
        self.version = fields[1], fields[2]
        self.snaplen = fields[5]
        self.linktype = fields[6] & 0x0FFFFFFF     # the top bits carry FCS information
        if linktype is not None and self.linktype != linktype:
            raise PcapError(f"link type {self.linktype}, expected {linktype} (Ethernet)")
        self._rec = struct.Struct(self.order + RECORD.format)
        self.truncated = False
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self) -> tuple[float, bytes]:
        head = self.f.read(self._rec.size)
        if not head:
            raise StopIteration
        if len(head) < self._rec.size:
            self.truncated = True
            raise StopIteration
        sec, frac, incl, _orig = self._rec.unpack(head)
        if incl > MAX_RECORD:
            self.truncated = True      # a corrupt length: nothing after it can be trusted
            raise StopIteration
        data = self.f.read(incl)
        if len(data) < incl:
            self.truncated = True
            raise StopIteration
        self.count += 1
        return sec + frac / (1e9 if self.nanos else 1e6), data


class PcapWriter:
    """Append Ethernet frames to a new classic pcap file (native byte order, microseconds)."""

    def __init__(self, f, *, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 65535):
        self.f = f
        self.snaplen = snaplen
        f.write(GLOBAL.pack(MAGIC_US, 2, 4, 0, 0, snaplen, linktype))
        self.count = 0

    def write(self, frame, ts: float | None = None) -> None:
        if ts is None:
            ts = time.time()
        sec = int(ts)
        usec = min(int((ts - sec) * 1e6), 999999)
        data = bytes(frame[: self.snaplen])
        self.f.write(RECORD.pack(sec, usec, len(data), len(frame)))
        self.f.write(data)
        self.count += 1

    def flush(self) -> None:
        self.f.flush()
