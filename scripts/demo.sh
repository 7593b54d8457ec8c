#!/usr/bin/env bash
# Start an io-pkt-v4-hc stack with a built-in configuration and show it working:
# a TAP device whose Linux side lives in a private network namespace ("iopkt-demo"),
# the stack configured with the QNX tools through $SOCK, and the Linux kernel pinging it.
#
#   scripts/demo.sh          set up, show, then stop and clean up
#   scripts/demo.sh --keep   leave the stack running (the script prints how to stop it)
#
# As root (a user other than root runs it with sudo); nothing here calls sudo itself.
#
# Traffic stays inside the namespace the script makes (10.200.0.0/24).
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1
if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (it makes a network namespace and a TAP device)" >&2
    exit 1
fi
bash scripts/setup.sh
BIN=$PWD/.venv/bin
NS=iopkt-demo
PREFIX=/run/iopkt-demo
export SOCK=$PREFIX

cleanup() {
    if [ -f "$PREFIX/dev/socket/status" ]; then
        kill "$(sed -n 's/^pid: //p' "$PREFIX/dev/socket/status")" 2>/dev/null || true
        for _ in $(seq 50); do mountpoint -q "$PREFIX" || break; sleep 0.1; done
    fi
    ip netns del "$NS" 2>/dev/null || true
}
[ $keep = 1 ] || trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say io-pkt-v4-hc -d tap dev=iopkt0,netns=$NS -ptcpip prefix=$PREFIX
"$BIN/io-pkt-v4-hc" -d tap "dev=iopkt0,netns=$NS" -ptcpip "prefix=$PREFIX"
say if_up -p ltap0
"$BIN/if_up" -p ltap0
say ifconfig ltap0 10.200.0.2/24
"$BIN/iopkt" ifconfig ltap0 10.200.0.2/24
ip -n "$NS" link set lo up
ip -n "$NS" addr add 10.200.0.1/24 dev iopkt0
ip -n "$NS" link set iopkt0 up
"$BIN/if_up" -l -m 100 -r 50 ltap0
say ifconfig -a
"$BIN/iopkt" ifconfig -a
say "(in namespace $NS) ping -c 3 10.200.0.2"
ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 10.200.0.2
say sysctl -w net.inet.ip.forwarding=1
"$BIN/iopkt" sysctl -w net.inet.ip.forwarding=1
say cat $PREFIX/dev/socket/if/ltap0/stats
cat "$PREFIX/dev/socket/if/ltap0/stats"
say sloginfo
"$BIN/sloginfo"
if [ $keep = 1 ]; then
    echo
    echo "The stack keeps running at $PREFIX. Try: SOCK=$PREFIX $BIN/iopkt ifconfig -a"
    echo "Stop it: kill \$(sed -n 's/^pid: //p' $PREFIX/dev/socket/status); ip netns del $NS"
fi
