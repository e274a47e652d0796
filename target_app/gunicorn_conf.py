"""gunicorn settings for the lab: uvicorn workers, multiprocess metrics.

Bind and worker count come from the command line (`lab run --workers N`).
"""

from typing import Any

worker_class = "uvicorn.workers.UvicornWorker"
graceful_timeout = 10
timeout = 60
accesslog = None


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's live gauges must stop counting in /metrics.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
