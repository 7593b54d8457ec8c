"""checksum.fold: the halving folds give exactly n % 0xffff, at every size the stack sums
(a header, an MSS segment, a 64 KB super-segment) and at the fold boundaries."""

import random

import pytest

from iopkt_fs.stack.wire.checksum import FOLD_FROM, fold, ones_sum


@pytest.mark.parametrize("bits", [1, 16, 320, FOLD_FROM - 1, FOLD_FROM, FOLD_FROM + 1, 11_840,
                                  16_384, 16_385, 524_288, 524_289, 1 << 23, (1 << 24) + 5])
def test_fold_is_the_residue(bits):
    rng = random.Random(bits)
    for _ in range(20):
        n = rng.getrandbits(bits) | (1 << (bits - 1))     # exactly `bits` long
        assert fold(n) == n % 0xFFFF
    all_ones = (1 << bits) - 1                            # the carries that fold back
    assert fold(all_ones) == all_ones % 0xFFFF


def test_ones_sum_keeps_the_zero_and_0xffff_corners_for_long_data():
    assert ones_sum(bytes(1480)) == 0                     # nothing but zeros
    assert ones_sum(b"\xff" * 1480) == 0xFFFF             # a non-zero multiple of 0xffff
    assert ones_sum(b"\xff\xff" + bytes(65_534)) == 0xFFFF
    data = random.Random(1).randbytes(65_001)             # odd: padded with a zero byte
    assert ones_sum(data) == (int.from_bytes(data + b"\0", "big") % 0xFFFF or 0xFFFF)
