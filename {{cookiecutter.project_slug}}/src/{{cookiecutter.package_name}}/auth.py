"""The bearer token check shared by the routes that need one (``/health/detailed``, ``/admin``)."""

from __future__ import annotations

import hmac


def bearer_matches(authorization: str | None, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>``, compared in constant time."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token)
