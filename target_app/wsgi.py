"""The app as a WSGI callable, for gunicorn's `sync` and `gthread` workers.

FastAPI is an ASGI app; a WSGI worker can only call it through an adapter. This
is the shape a team ends up with when it keeps the gunicorn config of its Flask
services (worker-sizing's faulty variant): a2wsgi's `ASGIMiddleware` runs the
app on one event loop in a thread of each worker, and every WSGI request thread
blocks until its response is complete. So a worker serves at most `--threads`
requests at once, each thread held for the whole of a request, its waiting on
the database or a dependency included: the concurrency of an async app, capped
at workers x threads.

a2wsgi does not speak the ASGI lifespan protocol, and the app opens its pools
and clients in its lifespan; `create_wsgi_app` enters the lifespan on the
adapter's loop itself, once per worker (gunicorn calls the factory in each
worker after the fork), and leaves it when the worker exits.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from a2wsgi import ASGIMiddleware

if TYPE_CHECKING:
    from fastapi import FastAPI

    from target_app.settings import Settings

__all__ = ["SHUTDOWN_S", "WsgiApp", "create_wsgi_app"]

# A worker that cannot leave its lifespan in this long (pools closing) exits anyway:
# gunicorn's graceful_timeout (target_app/gunicorn_conf.py) is 10 s.
SHUTDOWN_S = 8.0


class WsgiApp(ASGIMiddleware):
    """a2wsgi's adapter, with the app's lifespan entered on its loop; `close()` leaves it
    (gunicorn's worker: at exit, through atexit)."""

    def __init__(self, app: FastAPI) -> None:
        self.asgi_loop = asyncio.new_event_loop()
        threading.Thread(target=self.asgi_loop.run_forever, name="asgi-loop", daemon=True).start()
        self._stack = AsyncExitStack()
        lifespan = app.router.lifespan_context(app)
        self._run(self._stack.enter_async_context(lifespan))
        # a2wsgi types the ASGI app with its own TypedDicts; FastAPI takes plain mappings.
        super().__init__(app, loop=self.asgi_loop)  # type: ignore[arg-type]

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.asgi_loop).result(timeout=timeout)

    def close(self) -> None:
        if not self.asgi_loop.is_running():
            return
        self._run(self._stack.aclose(), timeout=SHUTDOWN_S)
        self.asgi_loop.call_soon_threadsafe(self.asgi_loop.stop)


def create_wsgi_app(settings: Settings | None = None) -> WsgiApp:
    """gunicorn's factory (`target_app.wsgi:create_wsgi_app()`), called in each worker."""
    from target_app.main import create_app

    wsgi = WsgiApp(create_app(settings))
    atexit.register(wsgi.close)
    return wsgi
