"""A free TCP port for a server a test starts (a process group's store, the demo's web server).

Why not the port the kernel gives a socket bound to port 0: it comes from the ephemeral range, and
between closing that socket and the server binding the port, any socket in the machine (a gloo
connection of another test, say) can be given the same port. A port below the ephemeral range is
never handed out that way; the bind here only checks that nothing listens on it already.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    try:
        low, high = (int(x) for x in _RANGE.read_text().split()[:2])
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default ephemeral range
    rng = random.Random()  # not the tests' seeded generator: two runs at once must not pick alike
    spans = [(start, stop) for start, stop in ((20000, low), (high + 1, 65536)) if stop - start >= 1000]
    for _ in range(200 if spans else 0):
        start, stop = rng.choice(spans)
        port = rng.randrange(start, stop)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))  # a process group's store listens on every address
            except OSError:
                continue
        return port
    with socket.socket() as s:  # no room outside the ephemeral range, or every try taken: the kernel's choice, race and all
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
