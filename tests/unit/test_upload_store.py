"""The resumable uploads' bookkeeping, on disk: locks, refusals, completion."""

from __future__ import annotations

from pathlib import Path

import pytest

from target_app.uploads import UploadError, UploadStore

pytestmark = pytest.mark.unit


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_a_second_patch_is_refused_while_the_first_is_writing(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_bytes=100)
    name = store.create(10)
    with store.appending(name, 0) as (sink, length):
        assert length == 10
        sink.write(b"abc")
        with pytest.raises(UploadError) as info, store.appending(name, 0):
            pass
        assert info.value.status == 409
    assert store.status(name) == (3, 10)


def test_a_refused_patch_leaves_nothing_and_the_last_one_makes_the_file(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_bytes=100)
    name = store.create(6)
    with pytest.raises(UploadError), store.appending(name, 0) as (sink, _):
        sink.write(b"abcdefgh")
        raise UploadError(413, "more than Upload-Length")
    assert store.status(name) == (0, 6)
    with store.appending(name, 0) as (sink, _):
        sink.write(b"abc")
    with pytest.raises(UploadError, match="the upload is at 3"), store.appending(name, 0):
        pass
    with store.appending(name, 3) as (sink, _):
        sink.write(b"def")
    assert (tmp_path / name).read_bytes() == b"abcdef"
    assert store.status(name) == (6, 6)
    assert _files(tmp_path) == [name]
    with pytest.raises(UploadError) as info:
        store.create(101)
    assert info.value.status == 413
    assert store.delete(name) and not store.delete(name)
