"""single-worker (seeds 3, 30): one uvicorn process on a machine with more cores.

Not a seam in the code: the same app, started two ways. Its seam type is
`Deployment` itself: a deployment scenario's variants return one, and the runner
(not a route) starts the app accordingly (`lab run single-worker` -> uvicorn,
one process; `--fixed` -> gunicorn with one uvicorn worker per core). The
toggle API refuses it: a running process cannot change how many of it there are.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Deployment, Scenario, Symptom

__all__ = ["SCENARIO", "OneWorkerPerCore", "SingleUvicornProcess", "WorkerParams"]


class WorkerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int = Field(0, ge=0, le=64, description="fixed: gunicorn workers (0: one per core)")


# --- faulty -----------------------------------------------------------------


def SingleUvicornProcess(params: WorkerParams) -> Deployment:
    """`uvicorn main:app`: one process, one event loop, one GIL; every other core idles."""
    return Deployment(workers=1)


# --- fixed ------------------------------------------------------------------


def OneWorkerPerCore(params: WorkerParams) -> Deployment:
    """`gunicorn -k uvicorn.workers.UvicornWorker -w $(nproc)`: a process per core,
    supervised (a crashed worker is replaced), sharing one listening socket."""
    return Deployment(workers=params.workers)


SCENARIO: Scenario[Deployment, WorkerParams] = Scenario(
    slug="single-worker",
    title="Deployed with one uvicorn worker on a multi-core machine",
    seeds=(3, 30),
    kind="deployment",
    summary=(
        "Under a CPU-heavy mix the single uvicorn process pins one core at 100% while "
        "the others idle; requests queue and throughput stops at one core's worth. "
        "gunicorn with one uvicorn worker per core uses them all."
    ),
    faulty=SingleUvicornProcess,
    fixed=OneWorkerPerCore,
    params=WorkerParams,
    workload="cpu_mix",
    default_load={"users": 32, "duration": "30s"},
    symptom=Symptom(
        metric="app_cpu_cores",
        op="<",
        # One Python process tops out near 1.0 (a little more where C code drops
        # the GIL); a worker per core on 2 cores reaches ~1.5 beside Locust.
        threshold=1.2,
        description="saturated by a closed-loop load, the app still keeps at most one core busy",
    ),
    diagnosis="""\
**What you see.** Throughput flat at one core's worth however many users
(report: throughput and CPU plots); `app_cpu_cores` about 1.0 on a machine
with more; p95/p99 grow with concurrency because requests queue for the one
process's GIL. `top -H` shows one busy `uvicorn` process. The same load on
`--fixed` raises `app_cpu_cores` towards the core count and the throughput
with it (`make fault=single-worker compare`: the throughput ratio).

**Why gunicorn + uvicorn workers (seed 3).** One Python process runs Python
code on one core at a time (the GIL); async only overlaps *waiting*. Workers
are processes, so they use every core. gunicorn adds what uvicorn alone does
not: a master that restarts a crashed or stuck worker (`--timeout`), recycles
them (`--max-requests` against slow leaks), and graceful reloads. (uvicorn's
own `--workers` gives the processes without most of the supervision.)

**How many workers (seed 3).** For CPU-bound Python, one per core
(`workers = os.cpu_count()`); the classic `2 x cores + 1` is for sync workers
that block on I/O. Async workers already overlap I/O, so more workers than
cores only adds memory (each worker is a full copy of the app: see the RSS
plot, about 2x) and context switches. Memory, not CPU, is often the limit in a
container: measure RSS per worker. Behind Kubernetes, prefer 1-2 workers per
pod and scale pods.

**Worker type (seed 30).** `uvicorn.workers.UvicornWorker` for an ASGI app
(FastAPI); `sync`/`gthread` workers are for WSGI apps. Blocking calls inside
`async def` still stall a whole worker (see blocking-call), whatever the count.

**1k req/s (seed 3).** Capacity is cores / CPU per request: at 2 ms of CPU a
request, one core serves ~500 req/s, so 1,000 req/s needs two cores' worth of
workers and nothing else on them. `make bench` measures the fixed setup on
the shop mix with a load driver that costs little CPU (wrk) and reports its
req/s and p99 next to the single worker's.

**Per-process state.** With several workers, in-process caches, sessions,
rate-limit counters and schedulers exist once per worker: move them to Redis
(see no-cache; the multi-worker scenarios to come).
""",
)
