"""The app factory: `uvicorn --factory target_app.main:create_app`.

gunicorn: `gunicorn -c target_app/gunicorn_conf.py 'target_app.main:create_app()'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.orm import configure_mappers

import faults
from target_app import metrics
from target_app.api.errors import install_error_handlers
from target_app.api.routes import (
    catalog,
    etl,
    exports,
    health,
    imports,
    lab_admin,
    live,
    logs,
    orders,
    pricing,
    products,
    quotes,
    recommendations,
    reports,
    sessions,
    uploads,
    users,
    webhooks,
)
from target_app.clients.upstream import UpstreamClient
from target_app.db import Database
from target_app.logfeed import LogFeedHandler
from target_app.observability import MetricsMiddleware, configure_logging, running_lag_monitor
from target_app.settings import Settings, get_settings
from target_app.uploads import UploadStore

__all__ = ["create_app"]

log = logging.getLogger("target_app")
_STATM = Path("/proc/self/statm")


async def _publish_process_state(runtime: faults.FaultRuntime, blind: bool) -> None:
    """Once a second: `lab_fault_active{scenario}` (not in a drill: `blind`), and this
    worker's RSS and CPU."""
    slugs = [] if blind else [s.slug for s in faults.all_scenarios()]
    page_size = os.sysconf("SC_PAGE_SIZE")
    while True:
        for slug in slugs:
            metrics.FAULT_ACTIVE.labels(slug).set(runtime.variant(slug)[0] == "faulty")
        with contextlib.suppress(OSError, IndexError, ValueError):
            resident_pages = int(_STATM.read_text().split()[1])
            metrics.WORKER_RSS.set(resident_pages * page_size)
        times = os.times()
        metrics.WORKER_CPU_SECONDS.set(times.user + times.system)
        await asyncio.sleep(1.0)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    store = faults.ToggleStore(settings.lab_state_file)
    # In production the toggle store is never read: no file, however edited,
    # can switch a faulty variant on.
    runtime = faults.FaultRuntime(
        store, seams=settings.lab_instrumentation and not settings.is_production
    )
    for slug in settings.faults:  # FAULTS=... at start-up; validated by get()
        scenario = faults.get(slug)
        store.enable(slug, scenario.params().model_dump(mode="json"))
    # After configure_logging, which replaces the root logger's handlers: the root
    # logger is the process's, so the live log is the last app's built here (one).
    logging.getLogger().addHandler(LogFeedHandler(runtime))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if settings.lab_instrumentation:
                await stack.enter_async_context(running_lag_monitor())
                publisher = asyncio.create_task(_publish_process_state(runtime, settings.lab_blind))
                stack.callback(publisher.cancel)
            started = {"env": settings.lab_env, "active": sorted(store.faulty())}
            log.info("app started", extra={"fields": {} if settings.lab_blind else started})
            if settings.redis_url:
                # No client-side timeout here: how long to wait is the cache
                # policy's decision (faults/redis_timeout.py).
                app.state.redis = Redis.from_url(settings.redis_url)
                stack.push_async_callback(app.state.redis.aclose)
            if settings.jobs_enabled and settings.redis_url:
                # The queue's broker made now, its connection opened and its Lua
                # scripts loaded: the first job's submission would pay for them.
                from target_app.jobs import job_queue

                await asyncio.to_thread(job_queue(settings.redis_url).warm_up)
            if settings.scheduler_enabled:
                # Here, in the lifespan: under gunicorn every worker runs it, so
                # every worker has a scheduler (faults/in_process_scheduler.py).
                from target_app.scheduler import PeriodicJobs

                periodic = PeriodicJobs(
                    app.state.db, runtime, app.state.redis, settings.scheduler_interval_s
                )
                periodic.start()
                stack.callback(periodic.shutdown)
            if settings.upstream_url:
                app.state.upstream = UpstreamClient(settings.upstream_url)
                stack.push_async_callback(app.state.upstream.aclose)
            if settings.inventory_url:
                from target_app.outbox import inventory_link, relay_outbox

                link = app.state.inventory = inventory_link(settings.inventory_url)
                stack.callback(link.client.close)
                if app.state.db.engine.dialect.name == "postgresql":
                    relay = asyncio.create_task(relay_outbox(app.state.db, link))
                    stack.callback(relay.cancel)
            # What start-up built (modules, the ORM's mappers, routes, the
            # schema) lives as long as the app. Frozen out of the collector, a
            # full collection no longer walks it: under load such collections
            # stalled every request in flight for 75-140 ms (gc.callbacks,
            # upstream-flaky at 50 req/s), and now stay short. gc.freeze is
            # the standard library's answer (see its docs); objects made later
            # are collected as before, so a leak still shows.
            gc.collect()
            gc.freeze()
            yield
        app.state.db.dispose()

    # SQLAlchemy configures the ORM's mappers on the first ORM query: 50-70 ms
    # that the first request of every worker paid (a readiness probe's SELECT 1
    # does not trigger it). Once here, at start-up.
    configure_mappers()

    app = FastAPI(title="Lab shop", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = Database(settings)
    # Built once: its constructor creates the upload directories.
    app.state.uploads = UploadStore(settings.upload_dir, settings.upload_max_bytes)
    app.state.seams = runtime
    app.state.upstream = None
    app.state.inventory = None
    app.state.redis = None

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(products.router)
    app.include_router(orders.router)
    app.include_router(live.router)
    app.include_router(users.router)
    app.include_router(sessions.router)
    app.include_router(catalog.router)
    app.include_router(recommendations.router)
    app.include_router(quotes.router)
    app.include_router(reports.router)
    app.include_router(exports.router)
    app.include_router(imports.router)
    app.include_router(uploads.router)
    app.include_router(etl.router)
    app.include_router(pricing.router)
    app.include_router(webhooks.router)
    app.include_router(logs.router)
    if settings.lab_admin_enabled:
        app.include_router(lab_admin.router)
    if settings.lab_instrumentation:
        app.add_middleware(
            MetricsMiddleware, slow_ms=settings.log_slow_ms, access_log=settings.access_log
        )
    return app
