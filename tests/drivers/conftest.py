"""Driver-test fixtures; the helpers and fixtures themselves live in drvtest_util.py."""

import pathlib
import sys

# Make the checkout importable when pytest runs without an installed package, and the
# helper module importable from the test modules (no package __init__ here on purpose).
for _path in (pathlib.Path(__file__).resolve().parents[2], pathlib.Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from drvtest_util import harness, harness2, host, host2, netns  # noqa: E402,F401 - fixtures
