"""Refuse a taken port in one line before a server starts, instead of its own retries and shutdown lines.

uvicorn logs ``[Errno 98]`` among its shutdown lines and exits 3; gunicorn retries for 5 s, then says "Can't
connect". Both servers set SO_REUSEADDR, so this check does too: a port held only by connections closing
(TIME_WAIT) is free for them, and for it.
"""

from __future__ import annotations

import errno
import socket


def unavailable(host: str, port: int, variable: str = "PORT") -> str | None:
    """Why ``host:port`` cannot be listened on, as one line naming ``variable``; None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is in use on {host}: stop what listens there, or set {variable} to a free port"
            return f"cannot listen on {host}:{port} ({exc.strerror}): set {variable} to another port"
    return None
