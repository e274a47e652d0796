"""Conditions of the environment the diagnosis names: a slow link, a service down.

A network scenario applies one of these in both variants; its fixed code copes
with it, so the run's evidence shows the condition without the code fault that
made it hurt (a deadline cut the slow upstream short, a retry absorbed its
failures). These findings name the condition, and score at most 0.6: when a
code fault's signature fires too, the fault is the answer (it is what to change).
"""

from __future__ import annotations

from faults._signs import Clue, Finding, Signs, strength

__all__ = ["CONDITIONS", "environment_findings"]

# The conditions, by the name a network scenario's `environment` field uses. Seen
# from the app, a link that slices large results (slicer) is a slow database link
# and a bandwidth cap on an upstream (bandwidth-limit) a slow upstream: the app
# records neither the bytes on the wire nor the upstream's response sizes.
CONDITIONS = (
    "latency on the database link",
    "the database is unreachable",
    "Redis slow or unreachable",
    "a slow upstream",
    "an upstream that fails",
    "a partition between services",
)
CAP = 0.6


def _capped(score: float) -> float:
    return min(CAP, score)


def environment_findings(s: Signs) -> list[Finding]:
    out: list[Finding] = []
    query_ms = s.number("db_query_p50_ms")
    if (s.number("db_time_share") or 0.0) >= 0.5 and (score := strength(query_ms, 50.0)):
        # Queries of a healthy local PostgreSQL take a few ms; 50 ms is a slow link
        # or a slow query, and the slow-query signature tells the second apart.
        out.append(
            Finding(
                "latency on the database link",
                _capped(score),
                (Clue("median query time", query_ms, "< 50", "ms"),),
                confirm="ping the database host; compare with pg_stat_statements' time",
            )
        )
    unreachable = s.log_count("database unreachable")
    if unreachable and (s.number("status_503_share") or 0.0) >= 0.05:
        out.append(
            Finding(
                "the database is unreachable",
                CAP,
                (
                    Clue("share of 503 answers", s.number("status_503_share"), "0"),
                    Clue("'database unreachable' records in app.log", float(unreachable), "0"),
                ),
                confirm="pg_isready against the app's DATABASE_URL",
            )
        )
    bypassed = s.log_count("redis unavailable")
    cache_errors = sum(
        v
        for k, v in s.counters.items()
        if k.startswith("cache_requests_total{") and "result=error" in k
    )
    if bypassed or cache_errors:
        out.append(
            Finding(
                "Redis slow or unreachable",
                CAP,
                (Clue("'redis unavailable' records in app.log", float(bypassed), "0"),),
                confirm="redis-cli --latency against the app's REDIS_URL",
            )
        )
    upstream_ms = s.number("upstream_p50_ms")
    if score := strength(upstream_ms, 1000.0):
        out.append(
            Finding(
                "a slow upstream",
                _capped(score),
                (Clue("median upstream call time", upstream_ms, "< 1000", "ms"),),
                confirm="the upstream's own latency dashboard",
            )
        )
    failed = s.number("upstream_failed_share")
    if (score := strength(failed, 0.01)) and (s.number("error_rate") or 0.0) < 0.01:
        out.append(
            Finding(
                "an upstream that fails",
                _capped(score),
                (
                    Clue("share of upstream calls that failed", failed, "< 0.01"),
                    Clue(
                        "client error rate (the app absorbed them)",
                        s.number("error_rate"),
                        "< 0.01",
                    ),
                ),
                confirm="the upstream's status page and error rate",
            )
        )
    waiting = s.log_count("awaits its stock")
    if waiting:
        out.append(
            Finding(
                "a partition between services",
                CAP,
                (Clue("orders logged as waiting for the other service", float(waiting), "0"),),
                confirm="the other service's reachability from this host",
            )
        )
    return out
