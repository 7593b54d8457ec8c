"""The protocol engine: a deterministic function of (frames in, socket calls, now, seed).

Nothing in this package imports trio or reads a clock. Time arrives as an argument,
``now``, an integer count of microseconds (see ``stack.time``); randomness comes from the
``random.Random`` the stack was built with. That is what lets the same code run under a
virtual clock in tests and for real against the Linux kernel.
"""
