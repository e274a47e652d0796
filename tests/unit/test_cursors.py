"""Pagination cursors are opaque and tamper-checked; both pagers return the same page."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from faults.offset_pagination import KeysetPages, OffsetPages, PagesParams
from target_app.cursors import BadCursor, Cursors

pytestmark = pytest.mark.unit


def test_cursor_round_trip_and_tampering() -> None:
    cursors = Cursors(b"secret")
    token = cursors.encode(1234)
    assert cursors.decode(token) == 1234
    _payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"after": 999999}').decode()
    with pytest.raises(BadCursor, match="signature"):
        cursors.decode(f"{forged}.{signature}")
    with pytest.raises(BadCursor):
        Cursors(b"other secret").decode(token)
    with pytest.raises(BadCursor):
        cursors.decode("garbage")


def test_keyset_page_equals_offset_page(seeded_db: str) -> None:
    engine = create_engine(seeded_db)
    cursors = Cursors(b"k")
    params = PagesParams(size=20)
    with Session(engine) as session:
        page_3 = OffsetPages(params).page(session, cursors, 3, None)
        keyset = KeysetPages(params).page(session, cursors, 1, cursors.encode(40))
        first = KeysetPages(params).page(session, cursors, 1, None)
        second = KeysetPages(params).page(session, cursors, 1, first["next_cursor"])
    engine.dispose()
    assert page_3["items"] == keyset["items"]  # ids are dense in the seeded shop
    assert second["items"][0]["id"] == first["items"][-1]["id"] + 1
