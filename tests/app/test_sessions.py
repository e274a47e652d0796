"""/sessions in one process: log in, who am I, log out (the in-memory-sessions seam's routes).

In-process there is no Redis: the fixed variant answers 503 (it keeps sessions in
Redis, tests/scenarios/test_in_memory_sessions.py runs it), and the faulty one,
in one process, works; which is why the fault never shows on a laptop.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from target_app.api.routes.sessions import COOKIE
from target_app.passwords import SEED_PASSWORD, hash_password, verify_password
from tests.app.helpers import Lab, error_of

pytestmark = pytest.mark.unit

SLUG = "in-memory-sessions"
USER = {"email": "user3@shop.test", "password": SEED_PASSWORD}


@pytest.fixture
def lab(lab: Lab) -> Iterator[Lab]:
    """The session's app with an empty cookie jar: each test says which cookie it sends."""
    lab.client.cookies.clear()
    yield lab
    lab.client.cookies.clear()


def _with(session_id: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session_id}"}


def _log_in(lab: Lab, presented: str | None = None) -> str:
    headers = _with(presented) if presented else {}
    response = lab.client.post("/sessions", json=USER, headers=headers)
    lab.client.cookies.clear()  # the tests send the cookie they mean, explicitly
    assert response.status_code == 201, response.text
    set_cookie = response.headers["set-cookie"]
    assert (
        "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Max-Age=3600" in set_cookie
    )
    assert "Secure" not in set_cookie  # not in development: the lab serves plain HTTP
    session_id: str = response.cookies[COOKIE]
    return session_id


def test_one_process_logs_in_answers_who_and_logs_out(lab: Lab) -> None:
    with lab.faulty(SLUG):
        session_id = _log_in(lab)
        me = lab.client.get("/sessions/me", headers=_with(session_id))
        assert me.status_code == 200 and me.json()["email"] == USER["email"], me.text
        assert lab.client.delete("/sessions", headers=_with(session_id)).status_code == 204
        after = lab.client.get("/sessions/me", headers=_with(session_id))
        assert after.status_code == 401, after.text
        # The dead session's cookie is cleared: logging in again presents no id.
        assert after.headers["set-cookie"].startswith(f'{COOKIE}=""; ')
        assert "Max-Age=0" in after.headers["set-cookie"]


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "user3@shop.test", "password": "not-it"},
        {"email": "nobody@shop.test", "password": SEED_PASSWORD},
    ],
)
def test_a_wrong_password_and_an_unknown_email_get_the_same_401(
    lab: Lab, credentials: dict[str, str]
) -> None:
    response = lab.client.post("/sessions", json=credentials)
    assert response.status_code == 401
    assert error_of(response)["message"] == "wrong e-mail or password"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "body", [{}, {"email": "user3@shop.test"}, {**USER, "remember": True}, {**USER, "password": ""}]
)
def test_a_malformed_log_in_is_a_422(lab: Lab, body: dict[str, object]) -> None:
    assert lab.client.post("/sessions", json=body).status_code == 422


def test_no_cookie_or_an_unknown_one_is_not_logged_in(lab: Lab) -> None:
    assert lab.client.get("/sessions/me").status_code == 401
    with lab.faulty(SLUG):
        assert lab.client.get("/sessions/me", headers=_with("made-up")).status_code == 401
    assert lab.client.delete("/sessions").status_code == 204  # logging out twice is fine


def test_the_fixed_variant_without_redis_says_so_with_a_503(lab: Lab) -> None:
    response = lab.client.post("/sessions", json=USER)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "REDIS_URL" in error_of(response)["message"]
    assert lab.client.get("/sessions/me", headers=_with("x")).status_code == 503


def test_the_faulty_variant_keeps_a_planted_session_id(lab: Lab) -> None:
    """Session fixation, in one process: the id the browser came with becomes the session."""
    with lab.faulty(SLUG):
        assert _log_in(lab, "planted-by-an-attacker") == "planted-by-an-attacker"
        me = lab.client.get("/sessions/me", headers=_with("planted-by-an-attacker"))
        assert me.status_code == 200 and me.json()["email"] == USER["email"]


def test_passwords_are_argon2id_and_verify() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("correct horse", None)  # no such user: still a full verify
