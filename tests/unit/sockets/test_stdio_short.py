"""Short reads of a TCP data file end on a stdio block boundary (resmgr/protos.stdio_short).

glibc's fread asks read() for whole multiples of its 8 KiB buffer counted from the
reader's offset; these tests replay that rule against stdio_short and count the read()
calls a 32 KiB fread loop makes (sha256sum's pattern), with and without the boundary."""

from iopkt_fs.resmgr.protos import STDIO_BLOCK, stdio_short

BUFSIZ = 8192          # glibc's stdio buffer for a file with st_blksize >= BUFSIZ
FREAD = 32768          # coreutils' digest block (sha256sum, md5sum)


def test_a_read_that_can_be_filled_is_filled():
    assert stdio_short(0, 32768, 32768) == 32768
    assert stdio_short(123, 4096, 1 << 20) == 4096


def test_a_short_read_ends_on_a_block_boundary_of_the_offset():
    assert stdio_short(0, 32768, 32656) == 24576
    assert stdio_short(8192, 32768, 20000) == 16384      # 8192 + 16384 = 24576
    assert stdio_short(100, 65536, 20000) == 16284        # ends at 16384
    assert (100 + stdio_short(100, 65536, 20000)) % STDIO_BLOCK == 0


def test_less_than_a_block_past_the_boundary_is_given_at_once():
    assert stdio_short(0, 32768, 5) == 5                   # a short message waits for nothing
    assert stdio_short(8000, 32768, 100) == 100
    assert stdio_short(0, 32768, 0) == 0


def fread_reads(chunks, short_rule):
    """read() calls glibc's fread loop makes to take ``chunks`` (the bytes buffered
    at each read, the stream never running dry) in FREAD-sized freads."""
    calls = 0
    off = 0            # the reader's file offset (what read() has returned)
    pending = 0        # bytes in stdio's buffer
    supply = iter(chunks)

    def sysread(count):
        nonlocal calls, off
        calls += 1
        avail = next(supply)
        n = short_rule(off, count, avail)
        off += n
        return n

    for _ in range(len(chunks) // 2):
        want = FREAD
        take = min(pending, want)
        pending -= take
        want -= take
        while want:
            if want < BUFSIZ:                      # through the buffer (underflow)
                got = sysread(BUFSIZ)
                take = min(got, want)
                pending = got - take
                want -= take
            else:                                  # straight into the caller's buffer
                want -= sysread(want - want % BUFSIZ)
    return calls


def test_one_short_read_no_longer_doubles_every_later_fread():
    # The first read finds 32,656 bytes (the sender's first burst), every later one a
    # full ring: as measured with strace on sha256sum < data.
    chunks = [32656] + [1 << 17] * 400
    plain = fread_reads(chunks, lambda off, size, avail: min(size, avail))
    aligned = fread_reads(chunks, stdio_short)
    freads = len(chunks) // 2
    assert plain >= 2 * freads - 1          # 8 KiB + 24 KiB for every fread after the first
    assert aligned <= freads + 2            # one READ per fread after the first
