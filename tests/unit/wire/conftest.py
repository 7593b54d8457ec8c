"""Make the checkout and the shared strategies importable however pytest is started."""

import pathlib
import sys

_HERE = pathlib.Path(__file__).resolve().parent
for _path in (str(_HERE.parents[2]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
