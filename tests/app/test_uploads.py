"""/uploads: a raw-body PUT, and resumable uploads (POST, HEAD, PATCH, DELETE).

Mid-body behaviour (a connection that breaks halfway, the cap crossed by a
chunked body) needs a socket: tests/integration/test_uploads.py.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from tests.app.helpers import UPLOAD_CAP, Lab, error_of

pytestmark = pytest.mark.unit

TOO_LARGE = f"the upload is larger than the {UPLOAD_CAP:,} bytes allowed"


def _name(prefix: str = "clip") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}.mp4"


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".partial").iterdir())


# --- PUT /uploads/{name} ---------------------------------------------------------


def test_put_stores_the_body_and_answers_its_sha256(lab: Lab) -> None:
    name, data = _name(), os.urandom(300_000)
    response = lab.client.put(f"/uploads/{name}", content=data)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
    }  # fmt: skip
    assert (lab.upload_dir / name).read_bytes() == data
    assert not [n for n in _leftovers(lab.upload_dir) if n.startswith(name)]
    # A second PUT replaces the file.
    again = lab.client.put(f"/uploads/{name}", content=b"short")
    assert again.json()["size"] == 5
    assert (lab.upload_dir / name).read_bytes() == b"short"


def test_put_an_empty_body(lab: Lab) -> None:
    name = _name("empty")
    response = lab.client.put(f"/uploads/{name}", content=b"")
    assert response.status_code == 201
    assert response.json()["sha256"] == hashlib.sha256(b"").hexdigest()


def test_put_over_the_cap_is_413_and_leaves_nothing(lab: Lab) -> None:
    name = _name("huge")
    response = lab.client.put(f"/uploads/{name}", content=b"x" * (UPLOAD_CAP + 1))
    assert response.status_code == 413
    assert error_of(response)["message"] == TOO_LARGE
    assert not (lab.upload_dir / name).exists()
    assert not [n for n in _leftovers(lab.upload_dir) if n.startswith(name)]


@pytest.mark.parametrize("name", [".partial", "-dash-first", "a" * 129, "sp ace"])
def test_a_name_is_a_plain_file_name(lab: Lab, name: str) -> None:
    response = lab.client.put(f"/uploads/{name}", content=b"x")
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["path", "name"]


def test_a_name_is_never_a_path(lab: Lab) -> None:
    response = lab.client.put("/uploads/..%2Fescape", content=b"x")
    assert response.status_code in (404, 422)
    assert not (lab.upload_dir.parent / "escape").exists()


# --- resumable: POST, HEAD, PATCH ----------------------------------------------------


def _create(lab: Lab, length: int) -> str:
    response = lab.client.post("/uploads", headers={"Upload-Length": str(length)})
    assert response.status_code == 201, response.text
    name: str = response.json()["name"]
    assert response.json() == {"name": name, "length": length}
    assert response.headers["location"] == f"/uploads/{name}"
    return name


def _offset(lab: Lab, name: str) -> tuple[int, int]:
    response = lab.client.head(f"/uploads/{name}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"]), int(response.headers["upload-length"])


def _patch(lab: Lab, name: str, offset: int, data: bytes) -> tuple[int, str]:
    response = lab.client.patch(
        f"/uploads/{name}", content=data, headers={"Upload-Offset": str(offset)}
    )
    if response.status_code == 204:
        return 204, response.headers["upload-offset"]
    return response.status_code, error_of(response)["message"]


def test_a_resumable_upload_from_creation_to_the_file(lab: Lab) -> None:
    data = os.urandom(10_000)
    name = _create(lab, len(data))
    assert _offset(lab, name) == (0, len(data))
    assert _patch(lab, name, 0, data[:4_000]) == (204, "4000")
    assert _offset(lab, name) == (4_000, len(data))
    assert _patch(lab, name, 4_000, data[4_000:]) == (204, str(len(data)))
    # Complete: a finished file, no longer in progress.
    assert (lab.upload_dir / name).read_bytes() == data
    assert _offset(lab, name) == (len(data), len(data))
    assert _patch(lab, name, len(data), b"more") == (
        404, f"no upload in progress named {name!r}",
    )  # fmt: skip


def test_a_patch_at_the_wrong_offset_is_409(lab: Lab) -> None:
    name = _create(lab, 10)
    assert _patch(lab, name, 0, b"abcd") == (204, "4")
    assert _patch(lab, name, 0, b"abcd") == (409, "Upload-Offset is 0, the upload is at 4")
    assert _patch(lab, name, 9, b"j") == (409, "Upload-Offset is 9, the upload is at 4")
    assert _offset(lab, name) == (4, 10)


def test_a_patch_past_the_declared_length_is_413_and_leaves_nothing(lab: Lab) -> None:
    name = _create(lab, 10)
    assert _patch(lab, name, 0, b"abcd") == (204, "4")
    assert _patch(lab, name, 4, b"0123456789") == (
        413, "the upload is larger than the 10 bytes allowed",
    )  # fmt: skip
    assert _offset(lab, name) == (4, 10)  # the refused PATCH wrote nothing


def test_creating_an_upload_over_the_cap_is_413(lab: Lab) -> None:
    response = lab.client.post("/uploads", headers={"Upload-Length": str(UPLOAD_CAP + 1)})
    assert response.status_code == 413
    assert error_of(response)["message"] == TOO_LARGE


@pytest.mark.parametrize("headers", [{}, {"Upload-Length": "-1"}, {"Upload-Length": "ten"}])
def test_creating_an_upload_needs_its_length(lab: Lab, headers: dict[str, str]) -> None:
    response = lab.client.post("/uploads", headers=headers)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["header", "upload-length"]


def test_a_patch_needs_its_offset(lab: Lab) -> None:
    name = _create(lab, 10)
    for headers in ({}, {"Upload-Offset": "-1"}):
        response = lab.client.patch(f"/uploads/{name}", content=b"abc", headers=headers)
        assert response.status_code == 422
        assert error_of(response)["details"][0]["loc"] == ["header", "upload-offset"]


def test_unknown_uploads_are_404(lab: Lab) -> None:
    name = _name("never")
    head = lab.client.head(f"/uploads/{name}")
    assert head.status_code == 404
    assert _patch(lab, name, 0, b"x") == (404, f"no upload in progress named {name!r}")


# --- DELETE /uploads/{name} -----------------------------------------------------------


def test_delete_removes_a_finished_or_a_partial_upload(lab: Lab) -> None:
    finished = _name()
    assert lab.client.put(f"/uploads/{finished}", content=b"data").status_code == 201
    partial = _create(lab, 10)
    for name in (finished, partial):
        response = lab.client.delete(f"/uploads/{name}")
        assert response.status_code == 204
        assert response.content == b""
        assert lab.client.head(f"/uploads/{name}").status_code == 404
    assert not (lab.upload_dir / finished).exists()
    assert not [n for n in _leftovers(lab.upload_dir) if n.startswith(partial)]
    again = lab.client.delete(f"/uploads/{finished}")
    assert again.status_code == 404
    assert error_of(again)["message"] == f"no upload named {finished!r}"
