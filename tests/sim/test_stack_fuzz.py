"""100,000 mutated frames through the whole stack (IPv4, ARP, IPv6 and ND, ICMP, UDP,
TCP in every state the corpus reached, forwarding) while one IPv4 and one IPv6 TCP
connection carry checked data both ways (stack_fuzz.py; scripts/fuzz.py runs a million):
nothing escapes, every byte delivered is the byte sent, drops are counted, and the stack
still answers ping and ping6 and keeps both connections established."""

import time

import stack_fuzz


def test_fuzz_100k_frames_through_the_whole_stack_with_checked_connections(record_property):
    tgt = stack_fuzz.Target(1)
    warm = tgt.t.tcp.stats.as_dict()      # the warm-up's own counts are not the fuzz's
    t0 = time.perf_counter()
    tgt, fed = stack_fuzz.run(100_000, seed=1, target=tgt)
    rate = fed / (time.perf_counter() - t0)
    record_property("fuzz_frames_per_second", f"{rate:.0f}")
    print(f"{fed} frames, {rate:.0f} frames/s")
    assert fed == 100_000
    # The checked streams kept moving, byte-exact (Stream.pump compares every byte),
    # both IPv4 and IPv6, both ways, and are still up.
    for st in tgt.streams:
        assert st.got > 1_000_000, (st.sent, st.got)
        assert st.tx.state == st.rx.state == "ESTABLISHED"
    t = tgt.t
    now = t.tcp.stats.as_dict()
    tcp = type(t.tcp.stats).from_dict({k: now[k] - warm[k] for k in now})
    # Mutations were dropped as counted errors at every layer they reached ...
    ip, ip6 = t.inet.statistics(), t.inet6.statistics()
    assert ip["ip"]["badsum"] > 0 and tcp.rcvbadsum > 0 and tcp.rcvbadoff > 0
    assert sum(v for k, v in ip6["ip6"].items() if k != "total" and isinstance(v, int)) > 0
    # ... and, with checksums repaired, got into TCP's state machine for the fuzzed
    # connections and the listener (PAWS, duplicates, bad cookies, challenge ACKs).
    assert tcp.pawsdrop + tcp.rcvduppack + tcp.challenge_ack > 0
    assert tcp.sc_bad_cookie > 0 and tcp.sc_added > 0 and tcp.sndrst > 0
    assert tgt.still_answers_ping()
    assert tgt.still_answers_ping6()
