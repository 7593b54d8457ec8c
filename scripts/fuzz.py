#!/usr/bin/env python3
"""Fuzz the whole stack, bounded in time (a script, not a test: CI runs the 100,000-frame
subset in tests/sim/test_stack_fuzz.py and the control-file fuzz in
tests/system/test_ctl_fuzz.py).

Frames: mutated frames through every protocol of an in-process stack while one IPv4 and
one IPv6 TCP connection carry checked data both ways (tests/sim/stack_fuzz.py); seeds
1, 2, 3 ... in turn until ``--frames`` have gone through or ``--seconds`` have passed.
Any exception that escapes the stack, or a checked byte that differs, stops the run with
its seed and traceback (rerun that seed to reproduce).

Controls (``--controls``, root and FUSE): Hypothesis writes to every writable control
file of a real mounted io-pkt-v6-hc (tests/system/ctl_fuzz.py); each refusal must be a
user errno with a logged reason, and the stack must still serve at the end.

    .venv/bin/python scripts/fuzz.py                       # 1,000,000 frames, at most 10 min
    .venv/bin/python scripts/fuzz.py --frames 200000 --seconds 60
    sudo .venv/bin/python scripts/fuzz.py --frames 0 --controls --examples 5000
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("", "tests", "tests/sim", "tests/system"):
    sys.path.insert(0, os.path.join(ROOT, sub))

import stack_fuzz  # noqa: E402


def fuzz_frames(total: int, seconds: float, per_seed: int) -> None:
    start = time.monotonic()
    fed_all, seed = 0, 0
    while fed_all < total and time.monotonic() - start < seconds:
        seed += 1
        left = seconds - (time.monotonic() - start)
        t0 = time.monotonic()
        tgt, fed = stack_fuzz.run(min(per_seed, total - fed_all), seed, seconds=left)
        dt = time.monotonic() - t0
        fed_all += fed
        if not tgt.still_answers_ping():
            raise SystemExit(f"seed {seed}: the stack stopped answering ping")
        moved = [st.got for st in tgt.streams]
        states = {st.tx.state for st in tgt.streams} | {st.rx.state for st in tgt.streams}
        print(f"seed {seed}: {fed} frames in {dt:.1f} s ({fed / dt:.0f}/s); checked bytes "
              f"{sum(moved)} ({', '.join(map(str, moved))}); connections {sorted(states)}",
              flush=True)
    dt = time.monotonic() - start
    print(f"frames: {fed_all} in {dt:.1f} s = {fed_all / dt:.0f} frames/s, {seed} seeds, no escapes")


def fuzz_controls(examples: int) -> None:
    from hypothesis import HealthCheck, given, settings, strategies as st
    import ctl_fuzz
    from iopkt_testutil import StackProcess

    with tempfile.TemporaryDirectory(prefix="iopkt-fuzz-") as tmp:
        sp = StackProcess(os.path.join(tmp, "stack"), variant="io-pkt-v6-hc")
        out = sp.start()
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        held = [os.open(sp.sock(p, "clone"), os.O_RDWR) for p in ("tcp", "udp", "raw", "unix")]
        try:
            files = ctl_fuzz.writable_files(sp.prefix)
            counts = {"ok": 0, "refused": 0, "blocked": 0}

            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(st.data())
            def run(data):
                path = data.draw(st.sampled_from(files))
                kind = ctl_fuzz.kind_of(path)
                line = data.draw(ctl_fuzz.lines_for(kind))
                if ctl_fuzz.harmful(kind, line) or not os.path.exists(path):
                    return
                counts[ctl_fuzz.write_one(sp.prefix, path, kind, line)] += 1

            t0 = time.monotonic()
            run()
            if not sp.alive():
                raise SystemExit("the stack died")
            print(f"controls: {len(files)} files, {sum(counts.values())} writes in "
                  f"{time.monotonic() - t0:.1f} s: {counts}; the stack still serves")
        finally:
            for fd in held:
                os.close(fd)
            sp.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="mutated frames in all (0: none)")
    ap.add_argument("--seconds", type=float, default=600.0, help="stop the frame fuzz after this long")
    ap.add_argument("--per-seed", type=int, default=200_000, help="frames per seed (a fresh stack each)")
    ap.add_argument("--controls", action="store_true", help="also fuzz the control files (root, FUSE)")
    ap.add_argument("--examples", type=int, default=2000, help="Hypothesis examples for --controls")
    args = ap.parse_args()
    if args.frames:
        fuzz_frames(args.frames, args.seconds, args.per_seed)
    if args.controls:
        fuzz_controls(args.examples)


if __name__ == "__main__":
    main()
