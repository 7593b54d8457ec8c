"""The TCP core is sans-IO: no trio, no clock, no sockets (architecture.md); attrs itself pulls in threading, which is harmless."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
TCP = ROOT / "iopkt_fs" / "stack" / "tcp"


def test_importing_tcp_pulls_in_no_io():
    code = ("import sys; import iopkt_fs.stack.tcp, iopkt_fs.stack.wire.tcp; "
            "bad = [m for m in ('trio', 'socket', 'asyncio', 'selectors') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_no_clock_reads_in_source():
    for path in list(TCP.glob("*.py")) + [ROOT / "iopkt_fs" / "stack" / "wire" / "tcp.py"]:
        text = path.read_text()
        assert not re.search(r"^\s*(import time|from time import)", text, re.M), path
        assert "monotonic(" not in text and "time.time(" not in text and "perf_counter" not in text, path
