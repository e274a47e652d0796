"""The app behind the WSGI adapter (worker-sizing's gthread workers): same answers, and
its lifespan entered and left, as a gunicorn worker calls it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

from target_app.wsgi import create_wsgi_app
from tests.app.helpers import Lab, lab_settings


def _get(app: Any, path: str) -> tuple[str, dict[str, Any]]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], json.loads(body)


def test_the_wsgi_app_answers_as_the_asgi_one(lab: Lab, writable_db: Path, tmp_path: Path) -> None:
    wsgi = create_wsgi_app(lab_settings(tmp_path / "lab", writable_db))
    try:
        status, product = _get(wsgi, "/products/7")
        assert status.startswith("200")
        assert product == lab.client.get("/products/7").json()
        status, ready = _get(wsgi, "/readyz")  # the lifespan ran: the database is open
        assert status.startswith("200") and ready["status"] == "ready"
    finally:
        wsgi.close()
    deadline = time.monotonic() + 5
    while wsgi.asgi_loop.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not wsgi.asgi_loop.is_running(), "close() left the adapter's loop running"
