"""File uploads (the upload-in-memory seam): a raw-body PUT, and resumable uploads.

The body is the file (no multipart: parsing it would cost more than the point
being made). The resumable routes follow the core of the tus protocol:
`POST` declares `Upload-Length`, `HEAD` answers `Upload-Offset`, `PATCH`
appends from `Upload-Offset`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request, Response, status
from starlette.requests import ClientDisconnect

from faults import upload_in_memory
from target_app.api.deps import SeamsDep
from target_app.api.errors import responses
from target_app.api.params import ByteCount
from target_app.uploads import NAME_PATTERN, UploadError, UploadStore

__all__ = ["router"]

router = APIRouter(prefix="/uploads", tags=["uploads"], responses=responses(422, 500))
NO_UPLOAD = (404, "no upload of that name")
TOO_LARGE = (413, "more bytes than UPLOAD_MAX_BYTES, or than the upload declared")

Name = Annotated[str, Path(pattern=NAME_PATTERN)]
# nginx's "client closed request": an answer nobody reads, but the metrics count it.
CLIENT_CLOSED_REQUEST = 499


async def _store(request: Request) -> UploadStore:  # async: no thread hop (api/deps.py)
    store: UploadStore = request.app.state.uploads  # built once by create_app
    return store


StoreDep = Annotated[UploadStore, Depends(_store)]


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    try:
        yield
    except UploadError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except ClientDisconnect:
        raise HTTPException(CLIENT_CLOSED_REQUEST, "the client closed the connection") from None


@router.put("/{name}", status_code=status.HTTP_201_CREATED, responses=responses(TOO_LARGE, 499))
async def put_upload(
    name: Name, request: Request, store: StoreDep, seams: SeamsDep
) -> dict[str, Any]:
    """The request body is the file, stored as `name` (replaced atomically); its sha256."""
    receiver = seams.pick(upload_in_memory.SCENARIO)
    with _answers():
        return await receiver.put(request, store, name)


@router.post("", status_code=status.HTTP_201_CREATED, responses=responses(TOO_LARGE))
def create_upload(
    response: Response, store: StoreDep, upload_length: Annotated[ByteCount, Header()]
) -> dict[str, Any]:
    """A resumable upload of `Upload-Length` bytes: its URL in `Location`."""
    with _answers():
        name = store.create(upload_length)
    response.headers["Location"] = f"/uploads/{name}"
    return {"name": name, "length": upload_length}


@router.head("/{name}", responses=responses(NO_UPLOAD))
def upload_offset(name: Name, store: StoreDep) -> Response:
    """How many bytes of the upload are on disk: where the next PATCH starts."""
    with _answers():
        offset, length = store.status(name)
    return Response(
        headers={"Upload-Offset": str(offset), "Upload-Length": str(length),
                 "Cache-Control": "no-store"},
    )  # fmt: skip


@router.patch(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(
        NO_UPLOAD,
        (409, "Upload-Offset is not where the upload ends, or another PATCH is writing it"),
        TOO_LARGE,
        499,
    ),
)
async def append_upload(
    name: Name,
    request: Request,
    store: StoreDep,
    seams: SeamsDep,
    upload_offset: Annotated[ByteCount, Header()],
) -> Response:
    """The body continues the upload at `Upload-Offset`; the new offset in the answer."""
    receiver = seams.pick(upload_in_memory.SCENARIO)
    with _answers():
        offset = await receiver.append(request, store, name, upload_offset)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"Upload-Offset": str(offset)})


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NO_UPLOAD))
def delete_upload(name: Name, store: StoreDep) -> Response:
    if not store.delete(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no upload named {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
