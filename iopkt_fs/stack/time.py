"""Time in the core is an int of microseconds: exact arithmetic, literal times in tests.

Only ``iopkt_fs.runtime`` converts trio's float seconds into these.
"""

Instant = int   # microseconds on the runtime's monotonic clock
Duration = int  # microseconds

MICROS_PER_SECOND = 1_000_000


def ms(n: float) -> Duration:
    return int(n * 1000)


def seconds(n: float) -> Duration:
    return int(n * MICROS_PER_SECOND)


def to_seconds(d: Duration) -> float:
    return d / MICROS_PER_SECOND
