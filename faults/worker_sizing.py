"""worker-sizing (seeds 3, 30): how many workers, and which type, from the measured curve.

Not a seam in the code: the same app, started two ways (a `Deployment`, as
single-worker). single-worker answers "one process or several"; this scenario
answers the two choices after it, the count and the type, on an I/O-heavy mix
where they matter most.

The faulty variant is the gunicorn config a team carries over from its Flask
services: `worker_class = "gthread"`, `workers = 2 * cores + 1`, `threads = 2`,
and FastAPI mounted through an ASGI-to-WSGI adapter (a2wsgi) because those
workers speak only WSGI (target_app/wsgi.py). It starts, serves every route and
passes every functional test. But a thread is held for the whole of a request,
its wait on the model server included, so the app serves at most
workers x threads requests at once: 10 on 2 cores. With recommendations taking
~100 ms of waiting, about 100 of them a second fill every thread, and every
other request, a health check included, queues behind them while the CPU idles.

The fixed variant is gunicorn with uvicorn workers, one per core: each worker's
event loop keeps serving while its requests wait, so the number of requests in
flight is not capped by the process layout, and the count follows the cores.

`make bench` (part worker-sizing, lab/bench/worker_sizing.py) measures the whole
curve: 1 to 2x cores workers of each type, on this I/O-heavy mix and on the
CPU-heavy one, throughput and p99 at each point; the page shows it.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Answer, Deployment, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = [
    "DEPENDENCY_MS", "SCENARIO", "FlaskEraThreadedWorkers", "UvicornWorkerPerCore",
    "WorkerSizingParams", "flask_era_workers",
]  # fmt: skip

# The model server's answer time (upstream/app.py, MODEL_LATENCY_MS): how long one
# recommendation holds whatever serves it.
DEPENDENCY_MS = 100.0


class WorkerSizingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int = Field(
        0, ge=0, le=64,
        description="gunicorn workers (0: faulty 2 x cores + 1, fixed one per core)",
    )  # fmt: skip
    threads: int = Field(2, ge=1, le=64, description="faulty: threads per gthread worker")


def flask_era_workers(cores: int | None = None) -> int:
    """gunicorn's documented starting point for sync workers, `2 x cores + 1`."""
    return 2 * (cores or os.cpu_count() or 1) + 1


# --- faulty -----------------------------------------------------------------


def FlaskEraThreadedWorkers(params: WorkerSizingParams) -> Deployment:
    """`gunicorn -k gthread -w $((2 * $(nproc) + 1)) --threads 2 wsgi:app`: at most
    workers x threads requests at once, each thread held while its request waits."""
    workers = params.workers or flask_era_workers()
    return Deployment(workers=workers, worker_class="gthread", threads=params.threads)


# --- fixed ------------------------------------------------------------------


def UvicornWorkerPerCore(params: WorkerSizingParams) -> Deployment:
    """`gunicorn -k uvicorn.workers.UvicornWorker -w $(nproc)`: an event loop per core,
    serving other requests while some wait."""
    return Deployment(workers=params.workers)


def _signature(s: Signs) -> Finding | None:
    """Requests queued before the app takes them: the clients' p50 five times what
    the server measures, with a loop that keeps up (threads or workers too few)."""
    if (s.number("event_loop_lag_p99_ms") or 0.0) >= 50:
        return None
    ratio = s.number("client_p50_over_server_mean")
    score = strength(ratio, 5.0)
    return finding(
        "worker-sizing",
        score,
        (Clue("client p50 / server mean time", ratio, "< 5"),),
    )


SCENARIO: Scenario[Deployment, WorkerSizingParams] = Scenario(
    signature=_signature,
    slug="worker-sizing",
    title="Workers sized and typed by the old WSGI rule: threads held while requests wait",
    seeds=(3, 30),
    kind="deployment",
    summary=(
        "gunicorn's threaded WSGI workers, 2 x cores + 1 of them with 2 threads each, "
        "serve at most 10 requests at once on 2 cores; recommendations that wait 100 ms "
        "on the model server hold them all, and a health check queues for seconds while "
        "the CPU idles. Uvicorn workers, one per core, answer it in milliseconds at the "
        "same offered rate."
    ),
    faulty=FlaskEraThreadedWorkers,
    fixed=UvicornWorkerPerCore,
    params=WorkerSizingParams,
    requires=("toxiproxy", "upstream"),
    workload="blocking",  # recommendations (~100 ms on the model server) and /healthz
    # Open model: requests on a schedule, so that a capped app cannot slow the load
    # down to what it serves. 300 requests/s is half recommendations: 150 a second
    # that each hold a thread 100 ms want 15 threads busy, and the faulty variant has
    # 10 on 2 cores (5 workers x 2); the fixed one serves them with CPU to spare.
    default_load={"rate": 300, "duration": "30s"},
    symptom=Symptom(
        metric="p50_ms",
        op=">",
        route="GET /healthz",
        # The requirement: a request that waits on nothing is not made to wait as long
        # as a whole call of the app's dependency. /healthz does no I/O; if its median
        # answer takes longer than one model-server call (DEPENDENCY_MS), it queued
        # for a worker slot held by requests that were only waiting.
        threshold=DEPENDENCY_MS,
        description=(
            "a health check, which does no I/O, waits longer than a whole model-server "
            "call: queued behind threads held by waiting requests"
        ),
    ),
    diagnosis="""\
**What you see.** Latency of *every* route climbs together, the cheap ones
included (report: per-route p50; `GET /healthz` in seconds), while the app's
CPU stays low (`app_cpu_cores` well under the cores) and the dependency
itself answers in its usual 100 ms (`upstream_request_duration_seconds`).
The app is not busy; it is full. In `ps -eLf` each gunicorn worker has
`--threads` request threads, all in a wait. Open-model load (`rate=`) shows it
as it is; a closed load of a few users hides it, since they slow down with
the app.

**Capacity of a threaded (sync) worker deployment.** workers x threads
requests in flight, each held for its whole duration: with requests that
spend 100 ms waiting, 10 slots serve at most 100 of them per second, however
idle the CPU. `2 x cores + 1` is a rule for sync WSGI workers whose requests
are short; it sizes for CPU, not for waits. Raising threads or workers raises
the cap, and the memory (each worker is a whole copy of the app).

**Uvicorn workers.** An event loop per process: a request that awaits the
database or an HTTP call costs a coroutine, not a thread, so the requests in
flight are bounded by what you configure (pool sizes, `--limit-concurrency`),
not by the process layout. The count then follows the CPU: one per core
(`make bench` measures the curve: throughput stops rising at the cores, and
past them p99 only grows). FastAPI is ASGI: it only runs on gthread through an
adapter, which is the first sign of the wrong worker type.

**Confirm.** `make fault=worker-sizing compare`; then `make bench
parts=worker-sizing` for the curve on your machine, both mixes.
""",
    answers=(
        Answer(
            question="API gets 1k requests per second. How would you scale FastAPI to handle this?",
            answer="""\
Find out which of two limits your requests hit, and size for that one.

- **CPU per request.** If requests compute, throughput stops at the cores,
  whatever the worker type. On this scenario's CPU-heavy mix, uvicorn workers
  reach {curve.cpu_uvicorn_best_rps} req/s at {curve.cpu_uvicorn_best_workers}
  workers and no more. 1,000 req/s then needs about 1,000 / that many times
  this machine's cores, behind a load balancer (single-worker's page does the
  arithmetic from CPU per request).
- **Requests in flight.** If requests wait (on a database, a payment
  provider, a model), what counts is how many can wait at once. By Little's
  law, 1,000 req/s that each wait 100 ms keep 100 requests in flight. Uvicorn
  workers hold them as coroutines: at 300 req/s offered on the I/O mix, one
  worker served {curve.io_uvicorn_1_rps} at a p99 of
  {curve.io_uvicorn_1_p99_ms} ms. Threaded workers need a thread for each: 4
  gthread workers with 2 threads served {curve.io_gthread_4_rps} req/s of the
  same 300.

Measure it with an open-model load at the target rate (`rate=1000`), not a
closed one. A closed load slows down with the app and hides the queue.
""",
        ),
        Answer(
            question="Why use gunicorn + uvicorn workers?",
            answer="""\
Uvicorn workers give each process an event loop. gunicorn gives the processes
a supervisor: restarts, timeouts, recycling, graceful reloads.

- **The loop** lets one worker overlap every wait. On this scenario's open
  load, {fixed.rps} req/s were served with a health check's median at
  {fixed.symptom} ms. The threaded WSGI workers of the faulty variant served
  {faulty.rps} req/s of the same offered rate, and a health check waited
  {faulty.symptom} ms for a thread.
- **The processes** use the cores. A worker per core is where the CPU mix's
  curve stops rising: {curve.cpu_uvicorn_1_rps} req/s with 1 worker,
  {curve.cpu_uvicorn_2_rps} with 2.
- **gunicorn's master** restarts a crashed worker, kills a stuck one after
  `--timeout`, and recycles workers with `--max-requests` against slow leaks.
""",
        ),
        Answer(
            question="How many workers would you choose?",
            answer="""\
Start at one uvicorn worker per core, then measure the curve on your own box:
throughput and p99 against the worker count, on the traffic you really have.
`make bench` (part worker-sizing) does it here for 1 to 2x the cores. The
tables under "Measured" show the whole curve:

- **CPU-heavy mix, uvicorn workers.** Throughput rises until the workers
  equal the cores, then stops. The best point is {curve.cpu_uvicorn_best_workers}
  workers, at {curve.cpu_uvicorn_best_rps} req/s: {curve.cpu_uvicorn_1_rps} req/s
  with 1 worker, {curve.cpu_uvicorn_4_rps} with 4. Past the cores, workers only
  share the same CPUs: p99 goes from {curve.cpu_uvicorn_2_p99_ms} ms with 2
  workers to {curve.cpu_uvicorn_4_p99_ms} ms with 4.
- **I/O-heavy mix, uvicorn workers.** The count is not what keeps up. At 300
  req/s offered, half of them waiting 100 ms each on the model server, one
  worker serves {curve.io_uvicorn_1_rps} req/s at a p99 of
  {curve.io_uvicorn_1_p99_ms} ms. Its event loop holds every wait as a
  coroutine.
- **Sync/threaded workers.** The `2 x cores + 1` rule is meant for short
  CPU-bound requests. On waits, the requests in flight are capped at
  workers x threads. By Little's law this load keeps
  150/s x 0.1 s = 15 recommendations in flight, and 4 gthread workers with 2
  threads each have 8 threads. They serve {curve.io_gthread_4_rps} req/s of the
  300, at a p99 of {curve.io_gthread_4_p99_ms} ms. Size threads by rate x wait
  if you must run them, and expect them to move with every change of latency.

Then fix the count so that every worker's database pool fits within
PostgreSQL's `max_connections`, and the sum of their RSS fits within the
container's memory limit. Each worker holds a whole copy of the app: at the
end of this scenario's runs, the faulty variant's workers took
{faulty.rss_end_mb} MB and the fixed one's {fixed.rss_end_mb} MB.
""",
        ),
        Answer(
            question="You deployed FastAPI with 1 worker. Why is it wrong?",
            answer="""\
On a machine with more cores than one, one process leaves CPU unused when
requests compute. On the CPU-heavy mix, one uvicorn worker serves
{curve.cpu_uvicorn_1_rps} req/s at a p99 of {curve.cpu_uvicorn_1_p99_ms} ms,
against {curve.cpu_uvicorn_2_rps} req/s at {curve.cpu_uvicorn_2_p99_ms} ms with
two. One worker is fine for I/O-bound traffic: on the I/O mix one uvicorn worker
kept up with the 300 req/s offered ({curve.io_uvicorn_1_rps} served). It is
also the right number when the platform scales instead (one worker per
container, many containers).

It is wrong in a different way with threaded workers: one gthread worker with 2
threads served {curve.io_gthread_1_rps} req/s of the same 300, at a p99 of
{curve.io_gthread_1_p99_ms} ms. single-worker's page measures the one-process
case on its own.
""",
        ),
        Answer(
            question="Why use multiple workers?",
            answer="""\
For the CPU: one worker per core is where throughput stops rising on the
CPU-heavy mix ({curve.cpu_uvicorn_best_workers} workers here, at
{curve.cpu_uvicorn_best_rps} req/s). More than that only adds memory and
queueing: with 4 workers on this machine, p99 was {curve.cpu_uvicorn_4_p99_ms}
ms against {curve.cpu_uvicorn_2_p99_ms} ms with 2.

For isolation: a worker that crashes or stalls takes its share of the
traffic with it, not all of it, and gunicorn replaces it.

Not for waiting. Extra threaded workers buy requests in flight at the price of
a whole process each. On the I/O mix, gthread throughput grew with the workers,
{curve.io_gthread_1_rps} req/s with 1 to {curve.io_gthread_4_rps} with 4,
while a single uvicorn worker already served {curve.io_uvicorn_1_rps}.
""",
        ),
        Answer(
            question="How to pick worker type (sync/async)?",
            answer="""\
By the app's interface first, then by how its requests spend their time.

- **FastAPI is ASGI.** Use uvicorn workers (`-k uvicorn.workers.UvicornWorker`,
  or the `uvicorn-worker` package). gunicorn's `sync` and `gthread` workers run
  WSGI apps. FastAPI only runs on them through an adapter (a2wsgi), which is
  how this scenario's faulty variant runs it.
- **A sync or threaded worker holds a thread for the whole of a request,**
  its waits included. This scenario's faulty variant is the Flask-era
  config: 2 x cores + 1 gthread workers with 2 threads each, 10 threads on
  2 cores. At {faulty.rps} req/s served, half of them recommendations that each
  wait 100 ms on the model server, the threads are all taken, and a health
  check, which does no I/O, waits {faulty.symptom} ms (median) for one.
  Uvicorn workers, one per core, answer it in {fixed.symptom} ms at the same
  offered rate ({fixed.rps} req/s served). They also use less CPU:
  {fixed.app_cpu_cores} cores against {faulty.app_cpu_cores} for the threads and
  the adapter.
- **Async only helps if the route awaits.** A blocking call inside
  `async def` stalls a uvicorn worker's whole loop (see blocking-call). A
  plain `def` route runs in FastAPI's threadpool, 40 threads a worker by
  default: the same kind of cap as gthread's, only higher.
- **CPU-bound work** gains nothing from either type beyond one worker per
  core. On the CPU mix's curve, gthread workers reach
  {curve.cpu_gthread_best_rps} req/s at best, and uvicorn workers
  {curve.cpu_uvicorn_best_rps}. Move that work to a process pool or a job queue
  (see cpu-bound, long-task-inline).
""",
        ),
    ),
)
