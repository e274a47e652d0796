"""gunicorn settings for the lab: uvicorn workers, multiprocess metrics.

Bind and worker count come from the command line (`lab run --workers N`).
"""

from typing import Any

worker_class = "uvicorn.workers.UvicornWorker"
graceful_timeout = 10
timeout = 60
accesslog = None
# The master's own lines (start, worker boot/exit) in the same JSON as the app's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "target_app.observability.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's live gauges must stop counting in /metrics.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
