"""The echo loop ping and ping6 share (BSD ping.c and KAME ping6.c have the same main
loop): a request every ``-i`` seconds on a non-blocking raw ICMP data file, replies
matched by identifier and sequence as they come, and an end after ``-c`` requests once
each is answered or ``-W`` seconds passed since the last one. What differs - the
request's bytes, how a reply is read and printed, the summary's wording - is passed in.
"""

import os
import select
import statistics
import struct
import time


def run_echo(args, data: int, request, reply, sendto: str) -> tuple[int, list[float]]:
    """-> (requests sent, round-trip times in ms). ``request(ident, seq, payload)`` gives
    the bytes to write; ``reply(message)`` gives ``(ident, seq, text)`` for an echo reply
    (``text`` starts its line, ``time=`` follows) or None for anything else."""
    ident = os.getpid() & 0xFFFF
    sent = 0
    rtts: list[float] = []
    outstanding: dict[int, float] = {}
    next_send = time.monotonic()
    last_send = None
    poller = select.poll()
    poller.register(data, select.POLLIN)
    try:
        while True:
            now = time.monotonic()
            if (args.c is None or sent < args.c) and now >= next_send:
                # The send time leads the data, as both pings put it (ICMP6ECHOTMLEN).
                payload = (struct.pack("!d", time.time()) + bytes(max(0, args.s - 8)))[:args.s]
                try:
                    os.write(data, request(ident, sent & 0xFFFF, payload))
                except OSError as exc:
                    print(f"{sendto}: {os.strerror(exc.errno)}", flush=True)
                outstanding[sent & 0xFFFF] = now
                sent += 1
                last_send = now
                next_send = now + args.i
            if args.c is not None and sent >= args.c and (not outstanding or now - last_send >= args.W):
                break
            timeout = max(0.0, min(next_send, (last_send or now) + args.W) - time.monotonic())
            if poller.poll(timeout * 1000):
                _take_replies(data, ident, outstanding, rtts, reply)
    except KeyboardInterrupt:
        pass
    return sent, rtts


def _take_replies(data: int, ident: int, outstanding: dict, rtts: list, reply) -> None:
    while True:
        try:
            message = os.read(data, 65536)
        except BlockingIOError:
            return
        got = reply(message)
        if got is None or got[0] != ident or got[1] not in outstanding:
            continue
        rtt = (time.monotonic() - outstanding.pop(got[1])) * 1000
        rtts.append(rtt)
        print(f"{got[2]} time={rtt:.3f} ms", flush=True)


def summary(title: str, sent: int, rtts: list[float], stddev: str) -> int:
    """The closing lines; the exit status (0 if any reply came, else 2)."""
    print(title)
    loss = 100.0 * (sent - len(rtts)) / sent if sent else 0.0
    print(f"{sent} packets transmitted, {len(rtts)} packets received, {loss:.1f}% packet loss")
    if rtts:
        sd = statistics.pstdev(rtts)
        print(f"round-trip min/avg/max/{stddev} = {min(rtts):.3f}/{statistics.mean(rtts):.3f}/"
              f"{max(rtts):.3f}/{sd:.3f} ms")
    return 0 if rtts else 2
