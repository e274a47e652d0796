"""`make bench`: numbers measured side by side in one run, reported as ratios.

One module per part: `catalogue` (every scenario, faulty then fixed, its main
metric's ratio), `capacity` (the shop mix on one worker vs a worker per core,
driven by wrk), `overhead` (what the lab's instrumentation costs), `outage`
(upstream-flaky's breaker with the provider down mid-run), `slo_sweep`
(performance-testing's throughput at its SLO),
`heavy_json_steps` (one change at a time) and `worker_sizing` (throughput and
p99 against the worker count and type, on a CPU and an I/O mix). The
command in lab/commands/bench.py runs them and writes runs/bench/<time>/.
"""
