"""Uploads against the real app (uvicorn): the size cap while streaming, resumable uploads.

Raw sockets where the point is what happens mid-body: a body that is not
finished yet, a connection that breaks halfway.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faults._contract import Variant
from tests.conftest import RunningApp, start_app

pytestmark = pytest.mark.integration

MiB = 2**20
CAP = 16 * MiB  # UPLOAD_MAX_BYTES of the app under test
SLUG = "upload-in-memory"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, seeded_db: str) -> Iterator[RunningApp]:
    home = tmp_path_factory.mktemp("uploads-app")
    running = start_app(
        home, seeded_db, UPLOAD_DIR=str(home / "uploads"), UPLOAD_MAX_BYTES=str(CAP)
    )
    yield running
    running.server.stop()


@pytest.fixture
def uploads(app: RunningApp) -> Iterator[Path]:
    """The upload dir, emptied after each test, and the fixed variant back on."""
    root = app.state_file.parent / "uploads"
    yield root
    httpx.post(f"{app.url}/_lab/reset", headers=app.auth).raise_for_status()
    for path in root.glob("*"):
        if path.is_file():
            path.unlink()


def _serve(app: RunningApp, variant: Variant) -> None:
    url = f"{app.url}/_lab/faults/{SLUG}"
    if variant == "faulty":
        httpx.put(url, headers=app.auth, json={}).raise_for_status()
    else:
        httpx.delete(url, headers=app.auth).raise_for_status()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listing = httpx.get(f"{app.url}/_lab/faults", headers=app.auth).json()
        if {f["slug"]: f["variant_here"] for f in listing["faults"]}[SLUG] == variant:
            return
        time.sleep(0.1)
    raise AssertionError(f"the app did not switch {SLUG} to {variant}")


def _connect(app: RunningApp, head: str) -> socket.socket:
    """A connection with a request's head sent: the body is the caller's to send, or not."""
    sock = socket.create_connection((app.server.config.host, app.server.config.port))
    sock.sendall(head.encode("latin-1") + b"\r\n")
    return sock


def _response(sock: socket.socket, timeout: float) -> http.client.HTTPResponse:
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _chunked(sock: socket.socket, data: bytes) -> None:
    for chunk in _chunks(data):
        sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_put_streams_the_body_to_a_file_and_answers_its_sha256(
    app: RunningApp, uploads: Path
) -> None:
    source = os.urandom(8 * MiB)
    response = httpx.put(f"{app.url}/uploads/clip.mp4", content=_chunks(source))  # chunked
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": "clip.mp4", "size": len(source), "sha256": hashlib.sha256(source).hexdigest(),
    }  # fmt: skip
    assert (uploads / "clip.mp4").read_bytes() == source
    assert _leftovers(uploads) == ["clip.mp4"]  # no temporary file left
    assert httpx.delete(f"{app.url}/uploads/clip.mp4").status_code == 204
    assert _leftovers(uploads) == []


def test_a_name_is_never_a_path(app: RunningApp, uploads: Path) -> None:
    assert httpx.put(f"{app.url}/uploads/.partial", content=b"x").status_code == 422
    assert httpx.put(f"{app.url}/uploads/..%2Fescape", content=b"x").status_code in (404, 422)
    assert not (uploads.parent / "escape").exists()


def test_the_cap_refuses_a_chunked_upload_at_the_byte_that_crosses_it(
    app: RunningApp, uploads: Path
) -> None:
    sock = _connect(
        app, "PUT /uploads/huge.mp4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    )
    with sock:
        _chunked(sock, bytes(CAP + MiB))  # no last chunk: the body is not over
        response = _response(sock, timeout=10)
        assert response.status == 413
        assert b"16,777,216 bytes" in response.read()
    assert _leftovers(uploads) == []


def test_the_cap_refuses_a_declared_length_before_reading_the_body(
    app: RunningApp, uploads: Path
) -> None:
    sock = _connect(
        app, f"PUT /uploads/huge.mp4 HTTP/1.1\r\nHost: x\r\nContent-Length: {CAP + 1}\r\n"
    )
    with sock:
        assert _response(sock, timeout=5).status == 413  # not a byte of the body sent
    assert _leftovers(uploads) == []


def test_faulty_answers_the_cap_only_once_the_whole_body_is_in_memory(
    app: RunningApp, uploads: Path
) -> None:
    _serve(app, "faulty")
    sock = _connect(
        app, "PUT /uploads/huge.mp4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    )
    with sock:
        _chunked(sock, bytes(CAP + MiB))
        with pytest.raises(TimeoutError):
            _response(sock, timeout=1.5)  # still reading, and holding, the body
        sock.sendall(b"0\r\n\r\n")
        assert _response(sock, timeout=10).status == 413
    assert _leftovers(uploads) == []


def _create(app: RunningApp, length: int) -> str:
    response = httpx.post(f"{app.url}/uploads", headers={"Upload-Length": str(length)})
    assert response.status_code == 201, response.text
    location: str = response.headers["Location"]
    assert location == f"/uploads/{response.json()['name']}"
    return location


def _offset(app: RunningApp, location: str) -> int:
    response = httpx.head(f"{app.url}{location}")
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def _interrupted_patch(app: RunningApp, location: str, total: int, part: bytes) -> None:
    """A PATCH of `total` bytes whose connection breaks after `part`."""
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nUpload-Offset: 0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nContent-Length: {total}\r\n"
    )
    with _connect(app, head) as sock:
        sock.sendall(part)
        time.sleep(0.5)  # let the server take in what was sent


def test_an_interrupted_patch_resumes_with_only_the_missing_bytes(
    app: RunningApp, uploads: Path
) -> None:
    source = os.urandom(8 * MiB)
    location = _create(app, len(source))
    _interrupted_patch(app, location, len(source), source[: 3 * MiB])

    # What a client does: ask where the upload stands, send from there; on a 409
    # (the server was still writing what it had), ask again.
    sent = 0
    for _ in range(20):
        offset = _offset(app, location)
        rest = source[offset:]
        response = httpx.patch(
            f"{app.url}{location}", content=rest,
            headers={"Upload-Offset": str(offset),
                     "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        if response.status_code != 409:
            sent = len(rest)
            break
        time.sleep(0.1)
    assert response.status_code == 204, response.text
    assert 0 < offset <= 3 * MiB  # the bytes before the break were kept...
    assert sent == len(source) - offset  # ...and not sent again
    assert int(response.headers["Upload-Offset"]) == len(source)
    assert _offset(app, location) == len(source)
    name = location.rsplit("/", 1)[1]
    assert hashlib.sha256((uploads / name).read_bytes()).digest() == hashlib.sha256(source).digest()
    assert _leftovers(uploads) == [name]  # the partial file and its length are gone


def test_faulty_loses_every_byte_of_an_interrupted_patch(app: RunningApp, uploads: Path) -> None:
    _serve(app, "faulty")
    source = os.urandom(8 * MiB)
    location = _create(app, len(source))
    _interrupted_patch(app, location, len(source), source[: 3 * MiB])
    time.sleep(0.5)
    assert _offset(app, location) == 0  # the client must send all 8 MiB again


@pytest.mark.parametrize("variant", ["faulty", "fixed"])
def test_resumable_uploads_refuse_a_wrong_offset_and_too_many_bytes(
    app: RunningApp, uploads: Path, variant: Variant
) -> None:
    _serve(app, variant)
    location = _create(app, MiB)
    url = f"{app.url}{location}"
    wrong = httpx.patch(url, content=b"x" * 10, headers={"Upload-Offset": "5"})
    assert wrong.status_code == 409
    assert "the upload is at 0" in wrong.json()["detail"]
    first = httpx.patch(url, content=b"x" * 1000, headers={"Upload-Offset": "0"})
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "1000"
    over = httpx.patch(url, content=b"x" * MiB, headers={"Upload-Offset": "1000"})
    assert over.status_code == 413
    assert _offset(app, location) == 1000  # the refused PATCH left nothing behind
    too_big = httpx.post(f"{app.url}/uploads", headers={"Upload-Length": str(CAP + 1)})
    assert too_big.status_code == 413
    assert httpx.head(f"{app.url}/uploads/nosuchupload").status_code == 404
