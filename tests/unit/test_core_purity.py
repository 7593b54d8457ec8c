"""The core stays sans-IO: importing every stack module loads no trio, and nothing in
stack/ reads a clock (DESIGN.md; aesthetics.md "Lessons" 1-2)."""

import pathlib
import re
import subprocess
import sys

STACK = pathlib.Path(__file__).resolve().parents[2] / "iopkt_fs" / "stack"


def test_importing_the_stack_does_not_import_trio():
    modules = sorted("iopkt_fs." + ".".join(p.relative_to(STACK.parent).with_suffix("").parts)
                     for p in STACK.rglob("*.py") if p.name != "__init__.py")
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + \
           "print('trio' in sys.modules or any(k.startswith('trio.') for k in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", modules


def test_no_clock_reads_in_the_stack():
    clock = re.compile(r"\btime\.(time|monotonic|perf_counter|sleep)\w*\(|\bdatetime\.now\(|import trio")
    offenders = [f"{p.relative_to(STACK)}:{i}" for p in STACK.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if clock.search(line)]
    assert offenders == []
