"""The Internet checksum (RFC 1071), computed with big-integer arithmetic.

Summing 16-bit words in a Python loop costs ~100 us per 1500 bytes; reading the whole
buffer as one big integer and reducing it modulo 0xffff does the end-around carry in C and
costs ~4 us (measured on this machine class, DESIGN.md). Because 2**16 == 1 (mod 0xffff),
``n % 0xffff`` equals the one's-complement sum folded to 16 bits, except that a non-zero
sum that is a multiple of 0xffff comes out as 0 instead of 0xffff: that is the 0/0xffff
corner handled in ``ones_sum``.
"""

import struct

_PSEUDO4 = struct.Struct("!4s4sBBH")

# Folding: for k a multiple of 16, 2**k == 1 (mod 0xffff), so (n & (2**k - 1)) + (n >> k)
# keeps n's residue and halves its size. CPython's n % 0xffff divides digit by digit
# (1.64 µs for 1,480 bytes here); four folds to ~1,024 bits and the division of what is
# left cost 0.90 µs, and at 64 KB 47 µs against 70. Below FOLD_FROM bits the division
# alone is cheaper.
FOLD_FROM = 8192
_FOLD_MASKS = {j: (1 << (1 << j)) - 1 for j in range(10, 24)}


def fold(n: int) -> int:
    """``n % 0xffff`` for a non-negative n, by halving folds first when n is large."""
    b = n.bit_length()
    if b > FOLD_FROM:
        j = (b - 1).bit_length() - 1        # 2**j < b <= 2**(j+1)
        masks = _FOLD_MASKS
        if j >= 24:
            return n % 0xFFFF
        while j >= 10:
            n = (n & masks[j]) + (n >> (1 << j))
            j -= 1
    return n % 0xFFFF


def ones_sum(data, initial: int = 0) -> int:
    """One's-complement sum of ``data`` (odd length padded with a zero byte) plus ``initial``.

    Returns a value in 0..0xffff; 0 only when everything summed was zero.
    """
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    total = n + initial
    if total == 0:
        return 0
    r = fold(total) if total.bit_length() > FOLD_FROM else total % 0xFFFF
    return r if r else 0xFFFF


def internet_checksum(data, initial: int = 0) -> int:
    """The value to put in a checksum field: the complement of the one's-complement sum."""
    return ~ones_sum(data, initial) & 0xFFFF


def verify(data, initial: int = 0) -> bool:
    """True if ``data`` (checksum field included) sums to 0xffff, i.e. is intact."""
    return ones_sum(data, initial) == 0xFFFF


def pseudo_header_sum_v4(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv4 pseudo-header (RFC 793 3.1, RFC 768) for TCP/UDP."""
    return ones_sum(_PSEUDO4.pack(src, dst, 0, proto, length))


def pseudo_header_sum_v6(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv6 pseudo-header (RFC 8200 8.1)."""
    return ones_sum(src + dst + struct.pack("!IxxxB", length, proto))
