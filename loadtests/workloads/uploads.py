"""A client uploading a 500 MB video as one raw PUT body, again and again.

The body is generated as it is sent: one 1 MiB block yielded over and over
(chunked transfer encoding), so Locust never holds the file. LAB_UPLOAD_MB
sets its size (LAB_UPLOAD_MB=2000 for the seed's 2 GB video). Each user
overwrites one name and deletes it when it stops: the disk holds at most one
upload per user.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "Uploader", "video"]

UPLOAD_MB = int(os.environ.get("LAB_UPLOAD_MB", "500"))
_BLOCK = bytes(range(256)) * 4096  # 1 MiB
_NUMBERS = itertools.count(1)


def video(megabytes: int) -> Iterator[bytes]:
    for _ in range(megabytes):
        yield _BLOCK


class Uploader(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 300.0

    def on_start(self) -> None:
        self.path = f"/uploads/lab-video-{next(_NUMBERS)}.mp4"

    @task
    def upload(self) -> None:
        # Locust types `data` as str or dict, but geventhttpclient sends any iterable
        # of bytes as it is consumed (Transfer-Encoding: chunked).
        body: Any = video(UPLOAD_MB)
        with self.client.put(
            self.path, data=body, name="/uploads/{name}", catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    def on_stop(self) -> None:
        with self.client.delete(self.path, name="/uploads/{name}", catch_response=True) as response:
            if response.status_code in (204, 404):  # 404: stopped before an upload finished
                response.success()


USERS = [Uploader]
