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
