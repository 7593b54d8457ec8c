import cProfile, pstats, subprocess, sys, os, trio
sys.path.insert(0, os.path.dirname(__file__))
import bench_tcp
ns = f"pcps{os.getpid()}"
subprocess.run(["ip", "netns", "add", ns], check=True)
try:
    pr = cProfile.Profile()
    async def main():
        bench = bench_tcp.InProcess(ns, "pcps0", "10.231.40", "")
        async with trio.open_nursery() as nursery:
            await bench.start(nursery)
            pr.enable()
            out = await bench.cps(3.0)
            pr.disable()
            print("cps", out["count"] / out["cps_seconds"], "cpu/conn us", out["cpu"] / out["count"] * 1e6)
            bench.runtime.shutdown()
    trio.run(main)
    pstats.Stats(pr).sort_stats(sys.argv[1] if len(sys.argv) > 1 else "tottime").print_stats(45)
finally:
    subprocess.run(["ip", "netns", "del", ns])
