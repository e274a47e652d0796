"""single-worker (seeds 3, 30): one uvicorn process on a machine with more cores.

Not a seam in the code: the same app, started two ways. Its seam type is
`Deployment` itself: a deployment scenario's variants return one, and the runner
(not a route) starts the app accordingly (`lab run single-worker` -> uvicorn,
one process; `--fixed` -> gunicorn with one uvicorn worker per core). The
toggle API refuses it: a running process cannot change how many of it there are.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Answer, Deployment, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding, strength

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


def _signature(s: Signs) -> Finding | None:
    """One process on a machine with more cores: it keeps one core busy (0.85 or
    more) and its loop lags. A capacity finding, scored at most 0.6, below a
    mechanism that explains the same CPU."""
    cores = s.number("app_cpu_cores")
    if s.workers > 1 or (s.cpus or 1) < 2 or cores is None:
        return None
    score = min(
        0.6, strength(cores, 0.85, span=1.2), strength(s.number("event_loop_lag_p99_ms"), 50.0)
    )
    return finding(
        "single-worker",
        score,
        (
            Clue("cores the app kept busy", cores, f"< 0.85 of {s.cpus}"),
            Clue("app worker processes", float(s.workers)),
            Clue("event-loop lag p99", s.number("event_loop_lag_p99_ms"), "< 50", "ms"),
        ),
    )


SCENARIO: Scenario[Deployment, WorkerParams] = Scenario(
    signature=_signature,
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
        # The requirement "the app uses more than one core when one is not enough":
        # saturated by load (32 users of a CPU-heavy mix, no wait) on a box of 2 or
        # more cores, it keeps busy one core and at least a fifth of another. One
        # Python process cannot pass one core of Python (its GIL); the native work
        # of its threads adds a little, so "more than 1.0" alone could be met by one
        # process, and 1.2 is a second core really put to work. (The share of the
        # CPU the box left it, `app_cpu_share_of_free`, is reported beside it: a
        # worker per core still left 0.2-0.3 of it idle here, its two processes
        # unevenly loaded through keep-alive connections, so "uses all it has" is
        # not what workers = cores gives; see the page.)
        threshold=1.2,
        description="saturated by load, the app keeps one core busy of the several it could use",
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
    answers=(
        Answer(
            question="API gets 1k requests per second. How would you scale FastAPI to handle this?",
            answer="""\
Work from CPU per request to cores. The cores you need are req/s x CPU seconds
per request, with headroom on top, so measure the CPU first. On this CPU-heavy
mix the app spends {faulty.app_cpu_ms_per_request} ms of CPU per request, and
1,000 req/s needs 1,000 times that much CPU each second.

One uvicorn process can use only one core.
`make fault=single-worker compare` shows it:

| | one uvicorn process | gunicorn, a worker per core |
|---|---|---|
| cores kept busy | {faulty.app_cpu_cores} | {fixed.app_cpu_cores} |
| share of its free CPU used | {faulty.app_cpu_share_of_free} | {fixed.app_cpu_share_of_free} |
| throughput (req/s) | {faulty.rps} | {fixed.rps} ({ratio.rps}x) |
| p95 (ms) | {faulty.p95_ms} | {fixed.p95_ms} |

The fix adds processes up to the cores the box has. Past one machine, add
instances behind a load balancer. That only works if the workers are
stateless: sessions, caches and rate limits live in Redis or PostgreSQL. Size
each worker's DB pool so that all of them fit within `max_connections`.

Then check the target itself with an open-model load, `make
fault=single-worker fixed=1 rate=1000 load`, and read p99 at that rate. A closed
loop of users slows down when the app does and hides the queue. On a small box
the load generator competes with the app: Locust needs about a core of its own
to offer 1,000 req/s. So `make bench` drives the shop mix with wrk, which costs
little CPU, and reports the req/s of one worker against one per core
(lab/bench/capacity.py).
""",
        ),
        Answer(
            question="Why use gunicorn + uvicorn workers?",
            answer="""\
- **Cores:** Python runs Python code on one core per process at a time (the
  GIL). `async` overlaps waiting, not computing. To use the cores you need
  processes: here {fixed.app_cpu_cores} cores busy against
  {faulty.app_cpu_cores}.
- **Supervision:** gunicorn is a mature process manager. Its master restarts
  crashed workers, kills stuck ones after `--timeout`, recycles workers with
  `--max-requests` (plus jitter) against slow leaks, and reloads gracefully on
  `HUP`. All workers share one listening socket.
- **Uvicorn worker:** each worker runs uvicorn's event loop and HTTP parser
  (`worker_class` in target_app/gunicorn_conf.py).
- **uvicorn alone:** recent releases' `uvicorn --workers N` also restarts dead
  workers. gunicorn remains the one with timeouts, recycling and hooks.
- **Deprecation:** the uvicorn release pinned here warns that
  `uvicorn.workers.UvicornWorker` is deprecated in favour of the
  `uvicorn-worker` package.

Each worker is a full copy of the app. Look at the RSS at the end of the run:
{faulty.rss_end_mb} MB against {fixed.rss_end_mb} MB.
""",
        ),
        Answer(
            question="How many workers would you choose?",
            answer="""\
- **Async (uvicorn) workers on CPU-bound Python:** one per core
  (`workers = os.cpu_count()`, or the cores the container's CPU quota grants,
  which may be fewer than the host has). This scenario's fixed variant does this
  (`workers=0`: one per core).
- **Sync workers that block on I/O:** `2 x cores + 1` is the old rule for
  these. Async workers already overlap I/O, so extra workers only add memory
  and context switches.
- **Memory:** it is often the real limit, since each worker holds its own copy
  of the app (RSS {fixed.rss_end_mb} MB for all workers together, against
  {faulty.rss_end_mb} MB for one).
- **Kubernetes:** run 1 or 2 workers per pod and scale pods. The orchestrator
  then does the supervising.

Confirm on your own box, not by formula: throughput should rise with each
worker until the cores are busy, and p95 should not get worse. Here the ratio
is {ratio.rps}x, with `app_cpu_cores` at {fixed.app_cpu_cores}. worker-sizing,
a later scenario, will measure the whole curve.
""",
        ),
        Answer(
            question="You deployed FastAPI with 1 worker. Why is it wrong?",
            answer="""\
On a machine with more than one core, one uvicorn process leaves the rest idle.

- **Throughput:** under load it pins one core and stops there. Here it keeps
  {faulty.app_cpu_cores} cores busy and serves {faulty.rps} req/s; a worker
  per core serves {fixed.rps} req/s.
- **It misses the requirement:** saturated, the app should keep more than one
  core busy, at least 1.2 (the symptom): one process kept
  {faulty.app_cpu_cores}. Of the CPU the box left it beside the load generator,
  one process used {faulty.app_cpu_share_of_free} and a worker per core
  {fixed.app_cpu_share_of_free}.
- **Queueing:** requests queue behind each other for the one GIL, so p95 grows
  with concurrency: {faulty.p95_ms} ms against {fixed.p95_ms} ms.
- **No redundancy:** one blocking call or one CPU-heavy request stalls every
  user of the process, and if the process crashes nothing answers until it is
  restarted.

How to tell: in Grafana, "Lab overview", the panel "CPU per worker" shows one
series flat at one core, and `top -H` shows one busy process. Run `make
fault=single-worker load`, then `make fault=single-worker fixed=1 load` (or
`compare`). One worker is right only when something else is the scaler: one
worker per container, with several containers.
""",
        ),
        Answer(
            question="Why use multiple workers?",
            answer="""\
- **Parallelism:** to run Python on every core. Processes do not share a GIL.
  The throughput ratio here is {ratio.rps}x.
- **Isolation:** a worker stalled by a slow request, or killed by a crash,
  takes only its share of the traffic, and the master starts a new one.
- **Rolling restarts:** workers can be recycled one at a time without
  downtime.

What it costs:

- **Memory:** per worker, as noted above.
- **Per-process state:** in-process caches, sessions, rate-limit counters and
  schedulers now exist once per worker, and diverge. Move them to Redis.
- **Connections:** the DB pool is per worker, so the sum of all pools must fit
  within PostgreSQL's `max_connections`.
""",
        ),
        Answer(
            question="How to pick worker type (sync/async)?",
            answer="""\
- **The app's interface decides.** FastAPI is ASGI, so use
  `uvicorn.workers.UvicornWorker` (or the `uvicorn-worker` package). gunicorn's
  `sync` and `gthread` workers serve WSGI apps and cannot run FastAPI.
- **Inside an async worker, the route's code decides.** `async def` routes must
  never block. A blocking call there stalls the whole worker, whatever the
  worker count (see blocking-call). Plain `def` routes run on the threadpool
  and may block.
- **CPU-heavy work** belongs in a process pool or a job queue, not in the
  request (see cpu-bound).

This scenario compares worker *counts*, not types: both variants run uvicorn's
event loop.
""",
        ),
    ),
)
