#!/usr/bin/env bash
# Install what iopkt_fs needs on a Debian machine, idempotently: FUSE 3 (and the headers
# pyfuse3 builds against), libpcap (iopkt tcpdump compiles its filters with it), the peers
# the system tests use (iproute2, ping, nc, curl, nftables, tshark, ethtool, radvd, ndisc6, strace), and a
# virtualenv at .venv with the package and its test extras.
# Run as root (apt-get; sudo is never called, a fresh Debian may not have it). Safe to run
# again: it only installs what is missing. procps brings sysctl(8), which the kernel tests
# run inside their namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in fuse3 libfuse3-dev pkg-config gcc iproute2 iputils-ping netcat-openbsd curl nftables tshark libpcap0.8 ethtool util-linux radvd ndisc6 procps strace; do
    have_pkg "$pkg" || need+=("$pkg")
done
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    need+=(python3-dev)
fi
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing packages ${need[*]}; run this script as root to install them" >&2
        exit 1
    fi
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c 'import iopkt_fs, pyfuse3, trio, attrs, scapy, pytest, pytest_trio, hypothesis' >/dev/null 2>&1 \
        || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]'
    touch .venv/.installed
fi
echo "setup: ready (.venv/bin holds io-pkt-v4, io-pkt-v4-hc, io-pkt-v6-hc, iopkt, if_up, sloginfo, nicinfo)"
