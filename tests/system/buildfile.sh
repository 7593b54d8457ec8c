#!/bin/sh
# A QNX-style startup script, run as a buildfile would run it. $1: a prefix to use.
# The QNX-named tools come first on PATH (iopkt shell-path); io-pkt returns by itself.
set -e
PREFIX=$1
PATH=$(iopkt shell-path):$PATH
export PATH
io-pkt-v4-hc -ptcpip prefix=$PREFIX
SOCK=$PREFIX
export SOCK
if_up -p lo0
ifconfig lo0 alias 10.77.0.1 netmask 255.255.0.0
ifconfig -a
sysctl -w net.inet.ip.forwarding=1
sysctl net.inet.ip.forwarding
mount -T io-pkt loop
ifconfig -l
sloginfo
kill $(sed -n 's/^pid: //p' $PREFIX/dev/socket/status)
