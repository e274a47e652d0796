"""Where uploaded files live, and the bookkeeping of a resumable upload.

The upload routes (target_app/api/routes/uploads.py) use the store for every
request, and both variants of the upload-in-memory seam write through it, so
it lives here, not in the scenario: the variants differ only in how the body
reaches a `Sink` (whole, or a block at a time).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from anyio import CancelScope, to_thread

__all__ = ["NAME_PATTERN", "Sink", "UploadError", "UploadStore", "too_large"]

# A file name, never a path: no slash, no leading dot (the store's own files start with one).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)


class UploadError(Exception):
    """A refusal with its HTTP status: 404 unknown upload, 409 conflict, 413 too large."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def too_large(limit: int) -> UploadError:
    return UploadError(413, f"the upload is larger than the {limit:,} bytes allowed")


class Sink:
    """Where received bytes go: a file, its running sha256 and size."""

    def __init__(self, file: BinaryIO, size: int = 0) -> None:
        self.file = file
        self.size = size
        self.digest = hashlib.sha256()

    def write(self, data: bytes | bytearray) -> None:  # in a worker thread: disk I/O
        self.file.write(data)
        self.digest.update(data)
        self.size += len(data)


class UploadStore:
    """Finished uploads in `root/<name>`; resumable ones in progress under `root/.partial/`.

    All state is on disk (sizes, an exclusive lock per upload being appended
    to), so that every worker of the app sees the same offsets.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.partial_dir = root / ".partial"
        self.partial_dir.mkdir(parents=True, exist_ok=True)

    def _check(self, name: str) -> str:
        if not _NAME.match(name):
            raise UploadError(404, f"no upload named {name!r}")
        return name

    def path(self, name: str) -> Path:
        return self.root / self._check(name)

    def _partial(self, name: str) -> Path:
        return self.partial_dir / self._check(name)

    def _length_file(self, name: str) -> Path:
        return self.partial_dir / f"{self._check(name)}~length"  # "~" is never in a name

    @contextlib.asynccontextmanager
    async def replacing(self, name: str) -> AsyncIterator[Sink]:
        """A temporary file that becomes `name` atomically, or disappears on any error.

        Both free a file's blocks (the one replaced, or the temporary one): 0.2 s
        for 500 MB, so they run in a worker thread, off the event loop."""
        final = self.path(name)
        temp = self.partial_dir / f"{name}~{secrets.token_hex(6)}"
        try:
            with temp.open("wb") as file:
                yield Sink(file)
            await to_thread.run_sync(temp.replace, final)
        finally:
            with CancelScope(shield=True):
                await to_thread.run_sync(lambda: temp.unlink(missing_ok=True))

    def create(self, length: int) -> str:
        """A new resumable upload of `length` bytes; its name, chosen by the server."""
        if length > self.max_bytes:
            raise too_large(self.max_bytes)
        name = secrets.token_hex(16)
        self._length_file(name).write_text(str(length))
        self._partial(name).touch()
        return name

    def status(self, name: str) -> tuple[int, int]:
        """(offset, length): bytes on disk and bytes declared. A finished upload is complete."""
        with contextlib.suppress(FileNotFoundError):
            length = int(self._length_file(name).read_text())
            return self._partial(name).stat().st_size, length
        with contextlib.suppress(FileNotFoundError):
            size = self.path(name).stat().st_size
            return size, size
        raise UploadError(404, f"no upload named {name!r}")

    @contextlib.contextmanager
    def appending(self, name: str, offset: int) -> Iterator[tuple[Sink, int]]:
        """The partial file opened at its end, locked against a concurrent PATCH, and
        its declared length; 409 unless `offset` is where it ends. Complete: renamed."""
        partial = self._partial(name)
        try:
            length = int(self._length_file(name).read_text())
            file = partial.open("r+b")
        except FileNotFoundError:
            raise UploadError(404, f"no upload in progress named {name!r}") from None
        with file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UploadError(409, "another PATCH is writing this upload") from None
            size = file.seek(0, os.SEEK_END)
            if offset != size:
                raise UploadError(409, f"Upload-Offset is {offset}, the upload is at {size}")
            sink = Sink(file, size)
            try:
                yield sink, length
            except UploadError:
                file.truncate(offset)  # a refused PATCH leaves nothing of itself
                raise
            file.flush()
            if sink.size == length:
                partial.replace(self.path(name))
                self._length_file(name).unlink()

    def delete(self, name: str) -> bool:
        found = False
        for path in (self.path(name), self._partial(name), self._length_file(name)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                found = True
        return found
