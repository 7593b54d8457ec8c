"""RACK-TLP, DSACK and F-RTO over the simulated link (virtual clock, seeded faults).

Each claim is read from the sender's counters: timeouts (``rexmttimeo``), losses RACK
marked (``rack_lost``), DSACKs and the undos they caused, spurious timeouts F-RTO found.
"""

import pytest

from tcp_netsim import IP_A, IP_B, NetSim, transfer

MB = 1_000_000


@pytest.mark.parametrize("seed,delay", [(1, 10_000), (2, 100)])
def test_20mb_at_5pct_loss_is_recovered_by_rack_not_by_timeouts(seed, delay):
    # 5 % of segments and of ACKs lost, 20 ms or 0.2 ms round trips: ~700 losses.
    sim = NetSim(seed, delay=delay, bandwidth=100e6 if delay > 1000 else 1e9,
                 faults=dict(loss=0.05))
    transfer(sim, 20 * MB)
    st = sim.a.stats
    assert st.rack_lost >= 600 and st.sack_recovery >= 300
    # What is left for the timer is a lost tail whose probe (or its ACK) was lost too.
    assert st.rexmttimeo <= 5, st.rexmttimeo


def test_reordering_widens_the_window_and_dsack_undoes_the_spurious_recoveries():
    results = {}
    for rack in (False, True):
        sim = NetSim(1, faults=dict(reorder=0.05), rack=rack, frto=rack)
        x, cli, srv, elapsed = transfer(sim, 4 * MB, close=False)
        results[rack] = (sim.a.stats, cli.conn, elapsed)
    (dup, _, dup_time), (st, conn, rack_time) = results[False], results[True]
    # Nothing is lost: every retransmission is spurious. DupThresh takes three
    # duplicate ACKs for a loss; RACK waits a reordering window that DSACKs widen.
    assert st.sack_reorder > 0 and st.dsack_rcvd > 0 and conn.rack_reo_mult > 1
    assert st.dsack_undo > 0
    assert st.sndrexmitpack < dup.sndrexmitpack and rack_time < dup_time
    assert st.rexmttimeo == 0


def _stall_acks(sim, start: int, length: int) -> None:
    """Every ACK handed to the B -> A link in [start, start + length) arrives at
    start + length: a path that holds packets for a while (no loss)."""
    link = sim.links[IP_A]
    schedule = link.schedule

    def held(now, size):
        out = schedule(now, size)
        if start <= now < start + length:
            out = [(max(t, start + length), c) for t, c in out]
        return out
    link.schedule = held


@pytest.mark.parametrize("frto", [True, False])
def test_frto_tells_a_spurious_timeout_from_a_loss(frto):
    sim = NetSim(4, frto=frto)
    data = 6 * MB
    # A 1.3 s stall of the ACK path half a second in: longer than the 1 s RTO.
    _stall_acks(sim, 500_000, 1_300_000)
    transfer(sim, data)
    st = sim.a.stats
    queue_drops = sim.links[IP_B].queue_drops     # real losses when the ACKs flood back
    assert st.rexmttimeo >= 1
    # The receiver's DSACKs count the needless retransmissions.
    if frto:
        assert st.spurious_rto == 1
        assert st.dsack_rcvd <= 3         # the timeout's one resend (and its echoes)
        assert st.sndrexmitpack <= queue_drops + 3
    else:
        assert st.spurious_rto == 0
        assert st.dsack_rcvd > 100        # the whole window sent twice
