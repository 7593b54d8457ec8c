"""Mutated frames never raise, drops are counted, and the stack still answers ping."""

import time

import pytest

import inet_fuzz


def _drops(stack) -> int:
    st = stack.inet.statistics()
    ip = st["ip"]
    reasons = ("badsum", "tooshort", "toosmall", "badhlen", "badlen", "badvers", "badaddr",
               "fragdropped", "badfrags", "rcvmemdrop", "noproto", "cantforward", "noroute")
    return (sum(ip[k] for k in reasons) + st["icmp"]["checksum"] + st["icmp"]["tooshort"]
            + st["udp"]["badsum"] + st["udp"]["hdrops"] + st["udp"]["badlen"] + st["udp"]["noport"]
            + st["arp"]["rcvbadlen"] + st["arp"]["rcvbadproto"])


def _check(n, seed):
    stack = inet_fuzz.run(n, seed)
    assert _drops(stack) > n // 10
    assert stack.inet.stats.total > n // 2
    now = 10**12
    # Whatever the fuzzer taught the ARP cache about 10.0.0.2, re-learn it first.
    en0 = stack.interface("en0")
    stack.inet.arp.learn(en0, 0x0A000002, inet_fuzz.PEER, now, create=True)
    assert inet_fuzz.still_answers_ping(stack, now)
    return stack


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_100k_frames(seed):
    t0 = time.perf_counter()
    _check(100_000, seed=seed)
    assert time.perf_counter() - t0 < 30     # ~2 s on this machine class
