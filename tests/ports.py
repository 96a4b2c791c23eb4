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
        low = int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default start of the ephemeral range
    rng = random.Random()  # not the tests' seeded generator: two runs at once must not pick alike
    for _ in range(200):
        port = rng.randrange(20000, max(low, 20001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    with socket.socket() as s:  # every try taken: the kernel's choice, race and all
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
