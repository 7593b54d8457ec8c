#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite: unit, simulation and system
# tests. System tests need root, /dev/fuse and network namespaces; kernel tests root and
# /dev/net/tun; elsewhere they skip. Run as root (nothing here calls sudo; a user other
# than root runs "sudo scripts/test.sh").
# Extra arguments go to pytest (e.g. scripts/test.sh -k manager -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
