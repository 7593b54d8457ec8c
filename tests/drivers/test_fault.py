"""The seeded fault injector: deterministic per seed, rates as configured, hooked by options."""

import random
import struct

import pytest
import trio

from iopkt_fs.drivers.base import DriverOptions
from iopkt_fs.drivers.fault import REORDER_MS, FaultConfig, FaultPlan, FaultStats, take_options
from iopkt_fs.stack.errors import StackError

from test_vxlan import MAC1, MAC2, free_port, unicast
from drvtest_util import wait_until

N = 20000


def frames(n=N):
    return [struct.pack("!I", i) * 16 for i in range(n)]


def run_plan(config, seed_text="s", n=N):
    stats = FaultStats()
    plan = FaultPlan(config, random.Random(seed_text), stats)
    out = plan.apply(frames(n), 0.0)
    out += plan.release(1e9)
    return out, stats


def test_same_seed_same_faults_other_seed_other_faults():
    cfg = FaultConfig(drop=0.1, dup=0.05, reorder=0.05, corrupt=0.02)
    a, sa = run_plan(cfg, "7:rx:vx0")
    b, sb = run_plan(cfg, "7:rx:vx0")
    c, _ = run_plan(cfg, "8:rx:vx0")
    assert a == b and sa == sb
    assert a != c


@pytest.mark.parametrize("field,pct", [("drop", 10), ("dup", 20), ("corrupt", 5), ("reorder", 10)])
def test_rates_roughly_as_configured(field, pct):
    out, stats = run_plan(FaultConfig(**{field: pct / 100}))
    counted = {"drop": stats.dropped, "dup": stats.duplicated, "corrupt": stats.corrupted,
               "reorder": stats.reordered}[field]
    assert abs(counted / N - pct / 100) < 0.015, counted
    if field == "drop":
        assert len(out) == N - counted
    elif field == "dup":
        assert len(out) == N + counted
    elif field == "corrupt":
        original = frames()
        changed = [(o, f) for o, f in zip(original, out) if o != f]
        assert len(changed) == counted and len(out) == N
        for o, f in changed:   # exactly one bit flipped
            assert bin(int.from_bytes(o, "big") ^ int.from_bytes(f, "big")).count("1") == 1
    else:
        assert sorted(out) == sorted(frames()) and out != frames()
        # Every frame arrived at once: each held one is passed by all that were not.
        assert stats.overtaken == counted


def test_reorder_holds_frames_back_1_to_5_ms_and_counts_the_overtaken():
    """One frame every 0.1 ms: a frame held back 1-5 ms is passed by the 10-50 frames
    behind it (real reordering, not adjacent swaps), and ``overtaken`` counts exactly the
    held frames that left after a later frame, as the receiver sees them."""
    stats = FaultStats()
    plan = FaultPlan(FaultConfig(reorder=0.02), random.Random(3), stats)
    out, due = [], {}
    for i, frame in enumerate(frames(5000)):
        now = i * 0.0001
        out += plan.release(now)
        got = plan.apply([frame], now)
        if not got:
            due[i] = next(e[0] for e in plan.heap if e[1] == plan.arrived - 1)
            assert REORDER_MS[0] <= due[i] - now <= REORDER_MS[1]
        out += got
    out += plan.release(1e9)
    index = [struct.unpack_from("!I", f)[0] for f in out]
    assert sorted(index) == list(range(5000))
    overtaken = [i for pos, i in enumerate(index) if any(j > i for j in index[:pos])]
    assert stats.overtaken == len(overtaken) == len(due) == stats.reordered > 50
    # How many later frames passed each held one: 10-50 (1-5 ms at 0.1 ms a frame).
    late = {i: sum(1 for j in index[:pos] if j > i) for pos, i in enumerate(index) if i in due}
    assert min(late.values()) >= 9 and max(late.values()) <= 52, late


def test_a_held_frame_nothing_follows_is_not_counted_overtaken():
    stats = FaultStats()
    plan = FaultPlan(FaultConfig(reorder=1.0), random.Random(1), stats)
    assert plan.apply([b"x"], 5.0) == []
    assert plan.release(5.0 + REORDER_MS[0] / 2) == []
    assert plan.release(5.0 + REORDER_MS[1]) == [b"x"]
    assert stats.reordered == 1 and stats.overtaken == 0


def test_delay_and_jitter():
    stats = FaultStats()
    plan = FaultPlan(FaultConfig(delay=0.010, jitter=0.005), random.Random(1), stats)
    assert plan.apply([b"a", b"b"], 1.0) == []
    assert 1.010 <= plan.next_deadline() <= 1.015
    assert plan.release(1.0099) == []
    assert sorted(plan.release(1.016)) == [b"a", b"b"] and stats.delayed == 2


def test_take_options():
    opts = DriverOptions("vni=1,fault_seed=3,fault_drop=12.5,peer=a,fault_dir=tx,fault_delay=20")
    cfg = take_options(opts)
    assert cfg == FaultConfig(seed=3, drop=0.125, delay=0.020, rx=False, tx=True)
    assert opts.items == [("vni", "1"), ("peer", "a")]
    assert take_options(DriverOptions("fault_reorder=2,fault_reorder_ms=2-8")) == \
        FaultConfig(reorder=0.02, reorder_range=(0.002, 0.008))
    assert take_options(DriverOptions("vni=1")) is None
    for text, why in [("fault_drop=101", "out of range"), ("fault_bogus=1", "unknown option"),
                      ("fault_dir=up", "rx, tx or both"), ("fault_delay=x", "not a number"),
                      ("fault_reorder_ms=5-1", "LO <= HI"), ("fault_reorder_ms=a-b", "LO-HI")]:
        with pytest.raises(StackError) as info:
            take_options(DriverOptions(text))
        assert why in info.value.message


async def _exchange(harness, harness2, faults: str, count: int = 400):
    port = free_port()
    d1 = await harness.load("devnp-vxlan", f"vni=9,bind=127.0.0.2:{port},peer=127.0.0.3:{port},mac={MAC1},{faults}")
    d2 = await harness2.load("devnp-vxlan", f"vni=9,bind=127.0.0.3:{port},peer=127.0.0.2:{port},mac={MAC2}")
    vx1 = d1.interfaces[0]
    sent = [unicast(MAC2, MAC1, i) for i in range(count)]
    for i in range(0, count, 50):
        for frame in sent[i:i + 50]:
            harness.send(vx1, frame)
        await trio.sleep(0.002)
    return d1, d2, sent


async def test_drop_through_a_real_driver_is_seeded(harness, harness2):
    d1, _, sent = await _exchange(harness, harness2, "fault_seed=5,fault_drop=25,fault_dir=tx")
    expected = d1.fault.stats.frames - d1.fault.stats.dropped
    await wait_until(lambda: len(harness2.frames.get("vx0", [])) == expected)
    await trio.sleep(0.05)
    got = harness2.frames["vx0"]
    assert len(got) == expected and 0.18 < 1 - expected / len(sent) < 0.32
    # The same seed over the same frames drops the same ones.
    ref = FaultPlan(FaultConfig(seed=5, drop=0.25), random.Random(f"5:tx:{d1.interfaces[0].name}"), FaultStats())
    assert got == ref.apply(sent, 0.0)


async def test_delay_through_a_real_driver(harness, harness2):
    start = trio.current_time()
    d1, _, sent = await _exchange(harness, harness2, "fault_delay=80,fault_dir=tx", count=20)
    assert len(harness2.frames.get("vx0", [])) == 0
    await wait_until(lambda: len(harness2.frames.get("vx0", [])) == 20)
    assert trio.current_time() - start >= 0.08
    assert harness2.frames["vx0"] == sent and d1.fault.stats.delayed == 20


async def test_rx_faults_on_receive_side(harness, harness2):
    port = free_port()
    d1 = await harness.load("devnp-vxlan", f"vni=9,bind=127.0.0.2:{port},peer=127.0.0.3:{port},mac={MAC1}")
    d2 = await harness2.load("devnp-vxlan", f"vni=9,bind=127.0.0.3:{port},peer=127.0.0.2:{port},mac={MAC2},"
                                            "fault_seed=1,fault_dup=100,fault_dir=rx")
    for i in range(10):
        harness.send(d1.interfaces[0], unicast(MAC2, MAC1, i))
    await wait_until(lambda: len(harness2.frames.get("vx0", [])) == 20)
    assert d2.fault.stats.duplicated == 10
    with pytest.raises(StackError) as info:
        await harness.runtime.load_driver("devnp-vxlan", "vni=1,fault_nonsense=1")
    assert "unknown option" in info.value.message
