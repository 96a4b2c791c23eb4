"""Whether a web server can listen on an address, said in the user's words; SIGTERM as Ctrl-C.

Why a module of its own: a web framework reports most failures to start as one generic message
(Gradio: "Cannot find empty port", for an address that is not this machine's or a host name that
does not resolve as well), so the address is tried here first, the way the server will bind it.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from voxkit.errors import VoxkitError


def check_address(host: str, port: int) -> None:
    """One line (a :class:`VoxkitError`) unless a server can listen on ``host``:``port``."""
    problem = bind_problem(host, port)
    if problem is not None:
        raise VoxkitError(f"cannot serve on {host}:{port}: {problem}")


def bind_problem(host: str, port: int) -> str | None:
    """Why no server can listen on ``host``:``port``, in the user's words; None when one can.

    Resolves ``host`` and binds a socket to every address it names, as uvicorn (asyncio's
    ``create_server``) will, with the same options. Why not leave it to Gradio: Gradio tries the
    port on 127.0.0.1 only, and then reports any failure of its server, an address that is not
    this machine's or a host name that does not resolve included, as a port in use.
    """
    address = (host[1:-1] if host.startswith("[") and host.endswith("]") else host) or "127.0.0.1"  # as Gradio reads it
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as err:  # UnicodeError: a name that is no valid host name ("a..b")
        reason = err.strerror if isinstance(err, socket.gaierror) else "not a valid host name"
        return f"unknown host name {host!r} ({reason}); give an address such as 127.0.0.1, or 0.0.0.0 for every interface"
    for family, kind, proto, _, sockaddr in infos:
        try:
            sock = socket.socket(family, kind, proto)
        except OSError:  # an address family this machine lacks: asyncio skips it too
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
            except OSError as err:
                return _bind_error(err, host, port)
    return None


def _bind_error(err: OSError, host: str, port: int) -> str:
    if err.errno == errno.EADDRINUSE:
        return f"port {port} is in use (choose another with --port)"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine (use 127.0.0.1, 0.0.0.0 for every interface, or one of its own addresses)"
    if err.errno in (errno.EACCES, errno.EPERM):
        if port < 1024:
            return f"permission denied: port {port} is below 1024, which needs administrator rights (choose another with --port)"
        return f"permission denied ({err.strerror})"
    return err.strerror or str(err)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (``kill``, ``docker stop``, systemd) stop the server as Ctrl-C does.

    Why: Python's default SIGTERM ends the process at once, skipping the server's shutdown and the
    exit handlers that delete the takes' folder."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
