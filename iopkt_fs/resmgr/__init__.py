"""The resource manager: the stack served as files under the prefix, through pyfuse3.

``nodes`` is the inode table and node kinds, ``tree`` builds io-pkt's namespace from a
running instance, ``render`` turns stack state into text, ``verbs`` turns ctl lines into
stack calls, ``limiter`` is io-pkt's threads_min/threads_max, and ``ops`` is the thin
pyfuse3 ``Operations`` adapter over all of it.
"""
