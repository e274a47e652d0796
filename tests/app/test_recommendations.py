"""/recommendations/{user_id}: the model server's answer (the blocking-call seam's route).

The model server is the lab's real upstream app (upstream/app.py), served by uvicorn
on a local port in a thread of the test process: both variants make a real HTTP
call to it, the faulty one with httpx's sync client, the fixed one through the
app's `httpx.AsyncClient`.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

import upstream.app
from lab.processes import free_port
from tests.app.helpers import Lab, copy_db, lab_settings, open_lab

pytestmark = pytest.mark.unit

MODEL_LATENCY_MS = 5.0  # the model's inference time here: not part of the answer


@contextlib.contextmanager
def running_model_server(latency_ms: float = MODEL_LATENCY_MS) -> Iterator[str]:
    """The upstream app with its model server, on a free port; its base URL."""
    api = upstream.app.add_model_server(upstream.app.create_app(), latency_ms=latency_ms)
    port = free_port()
    config = uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the model server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def lab_with_model_server(home: Path, database: Path) -> Iterator[Lab]:
    """An app under test whose UPSTREAM_URL is a running model server."""
    with (
        running_model_server() as url,
        open_lab(lab_settings(home, database, upstream_url=url)) as lab,
    ):
        yield lab


@pytest.fixture(scope="module")
def model_lab(pristine_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("model-lab")
    with lab_with_model_server(home, copy_db(pristine_db, home / "shop.sqlite")) as lab:
        yield lab


def expected_products(user_id: int, items: int = 10) -> list[int]:
    """The model's answer (upstream/app.py's model server), written out again."""
    seed = zlib.crc32(str(user_id).encode())
    return [(seed + i * 7919) % 10_000 + 1 for i in range(items)]


def test_recommendations_are_the_models_answer(model_lab: Lab) -> None:
    response = model_lab.client.get("/recommendations/7")
    assert response.status_code == 200
    assert response.json() == {"user_id": 7, "product_ids": expected_products(7)}
    assert expected_products(7)[:3] == [1347, 9266, 7185]  # the formula itself, pinned
    assert "upstream;dur=" in response.headers["server-timing"]


def test_recommendations_need_an_integer_user(model_lab: Lab) -> None:
    response = model_lab.client.get("/recommendations/seven")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_recommendations_need_the_model_server(lab: Lab) -> None:
    response = lab.client.get("/recommendations/7")
    assert response.status_code == 503
    assert response.json()["error"]["message"] == (
        "no model server configured (UPSTREAM_URL); start the lab's services with `make up`"
    )


def test_a_model_server_that_is_gone_is_a_502_in_both_variants(
    pristine_db: Path, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = lab_settings(
        tmp_path, copy_db(pristine_db, tmp_path / "shop.sqlite"), upstream_url=dead
    )
    with open_lab(settings) as lab:
        fixed = lab.client.get("/recommendations/7")
        with lab.faulty("blocking-call"):
            faulty = lab.client.get("/recommendations/7")
    assert fixed.status_code == faulty.status_code == 502
    assert fixed.json()["error"]["message"] == "the model server failed: ConnectError"
    assert faulty.json()["error"]["message"] == fixed.json()["error"]["message"]
