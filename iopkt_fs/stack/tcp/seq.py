"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4, BSD ``tcp_seq.h``).

Sequence numbers wrap, so ``a < b`` means "b is ahead of a by less than 2**31": the sign
of the 32-bit difference, exactly BSD's ``SEQ_LT(a, b) ((int)((a) - (b)) < 0)``. Every
comparison of two sequence (or acknowledgment, or timestamp) values goes through here -
but on the paths every segment takes (input.py's acceptability test and trim, recovery.py's
ACK processing, output.py's window and send loop, Connection.rcv_wnd), where the same
expressions are written out with ``MASK``/``_HALF``/``MOD``: a call costs more than the
arithmetic, and a connection's life runs ~80 of them.
"""

MOD = 1 << 32
MASK = MOD - 1
_HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (``n`` may be negative)."""
    return (a + n) & MASK


def seq_sub(a: int, b: int) -> int:
    """The signed distance ``a - b`` in -2**31 .. 2**31-1."""
    d = (a - b) & MASK
    return d - MOD if d >= _HALF else d


# The comparisons test the unsigned difference d = (a - b) mod 2**32 directly - seq_sub(a, b)
# is negative exactly when d >= 2**31 and zero when d == 0 - so each is one call, not two
# (they run dozens of times per segment).

def seq_lt(a: int, b: int) -> bool:
    return ((a - b) & MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    d = (a - b) & MASK
    return d == 0 or d >= _HALF


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & MASK) < _HALF


def seq_ge(a: int, b: int) -> bool:
    return ((a - b) & MASK) < _HALF


def seq_max(a: int, b: int) -> int:
    return a if ((a - b) & MASK) < _HALF else b


def seq_min(a: int, b: int) -> int:
    d = (a - b) & MASK
    return a if d == 0 or d >= _HALF else b


def seq_in(x: int, lo: int, hi: int) -> bool:
    """``lo <= x < hi`` on the sequence circle (the RFC 9293 3.4 window tests)."""
    return ((x - lo) & MASK) < ((hi - lo) & MASK)
