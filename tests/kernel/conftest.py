"""Kernel-test fixtures: the checkout, the driver tests' helpers and kpeer.py importable."""

import pathlib
import sys

_here = pathlib.Path(__file__).resolve().parent
for _path in (_here.parents[1], _here.parent / "drivers", _here):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from ktest_util import kstack, knetns  # noqa: E402,F401 - fixtures
