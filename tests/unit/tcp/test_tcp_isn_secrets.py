"""RFC 6528 / RFC 4987: the ISN and SYN-cookie keys come from the OS, so two stacks with
the same seed (the same RNG stream: ports, idents) still pick unrelated ISNs."""

import random

from iopkt_fs.stack.tcp.layer import TcpLayer

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def test_same_seed_different_isns_and_cookies():
    one = TcpLayer(lambda *a: None, random.Random(42))
    two = TcpLayer(lambda *a: None, random.Random(42))
    # The seeded stream is the same for both ...
    assert one.rng.random() == two.rng.random()
    # ... the secrets are not: the same 4-tuple at the same instant, different ISNs.
    isns = {layer.isn(A, 5001, B, 40000, 1_000_000) for layer in (one, two)}
    assert len(isns) == 2
    cookies = {layer._cookie(A, 5001, B, 40000, 777, 3, 1) for layer in (one, two)}
    assert len(cookies) == 2
    assert one._isn_key != two._isn_key and len(one._isn_key) == 32


def test_two_stacks_without_seed_give_unrelated_isns_for_one_tuple():
    """As a user starts them (no seed=): the same 4-tuple at the same instant on two
    stacks gives ISNs, timestamp offsets and cookies that share nothing."""
    from iopkt_fs.stack.config import StackConfig
    from iopkt_fs.stack.stack import Stack
    one, two = (Stack(StackConfig()).tcp for _ in range(2))
    isns = [layer.isn(A, 80, B, 40000, 5_000_000) for layer in (one, two)]
    assert isns[0] != isns[1]
    # Unrelated, not merely different: over many tuples the two differ by no constant
    # (a shared key and a clock offset would give one difference everywhere).
    deltas = {(one.isn(A, 80, B, p, 0) - two.isn(A, 80, B, p, 0)) & 0xFFFFFFFF
              for p in range(40000, 40064)}
    assert len(deltas) == 64
    assert one.ts_offset(A, 80, B, 40000) != two.ts_offset(A, 80, B, 40000)
    assert one._cookie(A, 80, B, 40000, 1, 2, 1) != two._cookie(A, 80, B, 40000, 1, 2, 1)
