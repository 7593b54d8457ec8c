"""Capture filters compiled by libpcap itself (Debian's libpcap0.8), through ctypes.

tcpdump's expression language (pcap-filter(7)) is libpcap's: ``pcap_open_dead`` gives a
handle for a link type, ``pcap_compile`` turns the expression into a BPF program (its
errors are libpcap's own texts), ``pcap_offline_filter`` runs the program over one frame.
Nothing here parses an expression.
"""

import ctypes
import ctypes.util

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
# pcap_open_dead takes a DLT_ value, files carry LINKTYPE_ values; they differ for raw IP
# (LINKTYPE_RAW 101 is DLT_RAW 12 in Linux's libpcap, pcap-linktype(7)).
DLT_FOR_LINKTYPE = {101: 12}


class FilterError(ValueError):
    """libpcap refused the expression (the message is libpcap's)."""


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


_lib = None


def libpcap():
    """The loaded libpcap (FilterError if the library is not installed)."""
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise FilterError(f"libpcap is not installed ({exc}); apt-get install libpcap0.8") from None
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p,
                                     ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_offline_filter.restype = ctypes.c_int
        lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_Program), ctypes.POINTER(_PktHdr),
                                            ctypes.c_char_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.pcap_lib_version.restype = ctypes.c_char_p
        _lib = lib
    return _lib


class Filter:
    """``Filter(expression, linktype)``; ``matches(frame)`` is libpcap's verdict."""

    def __init__(self, expression: str, linktype: int, snaplen: int = 262144):
        lib = libpcap()
        self._lib = lib
        self._prog = _Program()
        self._hdr = _PktHdr()
        handle = lib.pcap_open_dead(DLT_FOR_LINKTYPE.get(linktype, linktype), snaplen)
        if not handle:
            raise FilterError(f"libpcap has no handle for link type {linktype}")
        try:
            if lib.pcap_compile(handle, ctypes.byref(self._prog), expression.encode(), 1,
                                PCAP_NETMASK_UNKNOWN) != 0:
                raise FilterError(lib.pcap_geterr(handle).decode(errors="replace"))
        finally:
            lib.pcap_close(handle)

    @property
    def instructions(self) -> int:
        return self._prog.bf_len

    def matches(self, frame: bytes) -> bool:
        hdr = self._hdr
        hdr.caplen = hdr.len = len(frame)
        return self._lib.pcap_offline_filter(ctypes.byref(self._prog), ctypes.byref(hdr), frame) != 0

    def close(self) -> None:
        if self._prog.bf_insns:
            self._lib.pcap_freecode(ctypes.byref(self._prog))

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
