"""Signed pagination cursors: opaque to clients, checked on the way back in.

The app issues them (`GET /products/pages/bookmark`) and reads them back
whichever pager the offset-pagination seam picks, so they live here, not in
the scenario. The secret is `Settings.cursor_secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

__all__ = ["BadCursor", "Cursors"]


class BadCursor(ValueError):
    pass


class Cursors:
    """`base64(json).signature`: opaque to clients, checked on the way back in."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()[:24]

    def encode(self, after_id: int) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps({"after": after_id}))
        return f"{payload.decode()}.{self._sign(payload)}"

    def decode(self, token: str) -> int:
        payload, _, signature = token.encode().partition(b".")
        if not hmac.compare_digest(self._sign(payload).encode(), signature):
            raise BadCursor("cursor is not one this API issued (bad signature)")
        try:
            after = orjson.loads(base64.urlsafe_b64decode(payload))["after"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BadCursor(f"cursor is unreadable: {exc}") from None
        if not isinstance(after, int) or after < 0:
            raise BadCursor("cursor position is invalid")
        return after
