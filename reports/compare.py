"""`compare`: before/after comparison of two run dirs, with moving-block bootstrap CIs."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from .evidence import Evidence, load_evidence
from .plots import compare_plots
from .render import fmt, plot_entries, symptom_verdict, write_pair
from .series import (
    LAG_METRIC,
    SERVER_DURATION_METRIC,
    cpu_per_request_samples,
    interval_quantiles,
    per_second,
    rss_fit,
)
from .stats import block_bootstrap_ci, block_bootstrap_slope_diff
from .summary import load_or_build_summary

__all__ = ["COMPARED_METRICS", "compare", "compare_runs", "symptom_headline"]

MIN_SAMPLES = 3
MIN_SLOPE_POINTS = 4

Statistic = Callable[[NDArray[np.float64]], float]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str
    higher_is_better: bool = False


COMPARED_METRICS: list[MetricSpec] = [
    MetricSpec("rps", "throughput (req/s)", higher_is_better=True),
    MetricSpec("p50_ms", "p50 response time (ms)"),
    MetricSpec("p95_ms", "p95 response time (ms)"),
    MetricSpec("p99_ms", "p99 response time (ms)"),
    MetricSpec("error_rate", "error rate"),
    MetricSpec("rss_slope_mb_per_10k_requests", "RSS slope (MB / 10k requests)"),
    MetricSpec("rss_end_mb", "RSS at end (MB)"),
    MetricSpec("event_loop_lag_p99_ms", "event-loop lag p99 (ms)"),
    MetricSpec("server_p95_ms", "server-side p95 (ms)"),
    MetricSpec("app_cpu_ms_per_request", "app CPU per request (ms)"),
    # Where the time goes (no per-second series: reported, not bootstrapped).
    MetricSpec("db_time_share", "share of request time in the DB"),
    MetricSpec("db_queries_per_request", "DB queries per request"),
    MetricSpec("upstream_calls_per_request", "upstream calls per request"),
    MetricSpec("unhandled_error_rate", "unhandled 500s / responses"),
]


def _mean(x: NDArray[np.float64]) -> float:
    return float(np.mean(x))


def _median(x: NDArray[np.float64]) -> float:
    return float(np.median(x))


def _ratio_of_sums(x: NDArray[np.float64]) -> float:
    """Rows (denominator, numerator): sum(numerator) / sum(denominator)."""
    den = float(x[:, 0].sum())
    return float(x[:, 1].sum()) / den if den > 0 else math.nan


def _cpu_ms_per_request(x: NDArray[np.float64]) -> float:
    """Rows (cpu_seconds, requests): total CPU ms per request."""
    den = float(x[:, 1].sum())
    return 1000.0 * float(x[:, 0].sum()) / den if den > 0 else math.nan


def _finite(values: Any) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr)]


def _samples(ev: Evidence) -> dict[str, tuple[NDArray[np.float64], Statistic]]:
    """Per-second samples of each metric that has them, with the statistic to compare."""
    out: dict[str, tuple[NDArray[np.float64], Statistic]] = {}
    ps = per_second(ev)
    if ps is not None:
        out["rps"] = (_finite(ps["rps"]), _mean)
        for col in ("p50", "p95", "p99"):
            out[f"{col}_ms"] = (_finite(ps[col]), _median)
        rows = ps[["requests", "failures"]].to_numpy(dtype=float)
        rows = rows[np.isfinite(rows).all(axis=1) & (rows >= 0).all(axis=1)]
        out["error_rate"] = (rows, _ratio_of_sums)
    lag = interval_quantiles(ev, LAG_METRIC, 0.99)
    if lag is not None:
        out["event_loop_lag_p99_ms"] = (_finite(lag["value"] * 1000), _median)
    server = interval_quantiles(ev, SERVER_DURATION_METRIC, 0.95, exclude_route="/metrics")
    if server is not None:
        out["server_p95_ms"] = (_finite(server["value"] * 1000), _median)
    cpu = cpu_per_request_samples(ev)
    if cpu is not None:
        out["app_cpu_ms_per_request"] = (cpu, _cpu_ms_per_request)
    return out


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _better(spec: MetricSpec, before: float | None, after: float | None) -> str | None:
    if before is None or after is None or before == after:
        return None
    after_higher = after > before
    return "after" if after_higher == spec.higher_is_better else "before"


def _slope_row(row: dict[str, Any], ev_a: Evidence, ev_b: Evidence, n_boot: int, seed: int) -> None:
    fa, fb = rss_fit(ev_a), rss_fit(ev_b)
    if fa is None or fb is None:
        return
    pa, pb = fa.fitted, fb.fitted
    if len(pa) < MIN_SLOPE_POINTS or len(pb) < MIN_SLOPE_POINTS:
        return
    try:
        res = block_bootstrap_slope_diff(
            pa["requests"], pa["rss_mb"], pb["requests"], pb["rss_mb"], n_boot=n_boot, seed=seed
        )
    except ValueError:
        return
    low, high = res.diff_low * 10_000, res.diff_high * 10_000
    if math.isfinite(low) and math.isfinite(high):
        row.update(ci_low=low, ci_high=high, significant=res.significant)


def _ratio_row(
    row: dict[str, Any],
    a: tuple[NDArray[np.float64], Statistic] | None,
    b: tuple[NDArray[np.float64], Statistic] | None,
    n_boot: int,
    seed: int,
) -> None:
    if a is None or b is None or a[0].shape[0] < MIN_SAMPLES or b[0].shape[0] < MIN_SAMPLES:
        return
    _, low, high = block_bootstrap_ci(a[0], b[0], a[1], n_boot=n_boot, seed=seed)
    if math.isfinite(low) and math.isfinite(high):
        row.update(ci_low=low, ci_high=high, significant=bool(low > 1 or high < 1))


def compare_runs(run_a: Path, run_b: Path, *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The comparison dict (what comparison.json holds) of before=run_a and after=run_b."""
    run_a, run_b = Path(run_a), Path(run_b)
    return _compare(
        run_a, run_b, load_evidence(run_a), load_evidence(run_b), n_boot=n_boot, seed=seed
    )


def _symptom_specs(summary: Mapping[str, Any]) -> list[MetricSpec]:
    """The scenario's own symptom metric, when the fixed list does not have it
    (peak RSS growth, cores used, rows per second...): the number the fix is about."""
    symptom = summary.get("symptom") or {}
    name, op = symptom.get("name"), symptom.get("op")
    # A route's number ("p50_ms of /x / ...") is no summary field of its own.
    if not isinstance(name, str) or name not in summary:
        return []
    if name in {spec.name for spec in COMPARED_METRICS}:
        return []
    return [MetricSpec(name, f"{name} (the symptom)", higher_is_better=op in ("<", "<="))]


def _compare(
    run_a: Path, run_b: Path, ev_a: Evidence, ev_b: Evidence, *, n_boot: int, seed: int
) -> dict[str, Any]:
    before, after = load_or_build_summary(run_a), load_or_build_summary(run_b)
    samples_a, samples_b = _samples(ev_a), _samples(ev_b)
    metrics: list[dict[str, Any]] = []
    for i, spec in enumerate([*COMPARED_METRICS, *_symptom_specs(before)]):
        b, a = _num(before.get(spec.name)), _num(after.get(spec.name))
        row: dict[str, Any] = {
            "name": spec.name,
            "label": spec.label,
            "before": b,
            "after": a,
            "ratio": _num(a / b) if a is not None and b not in (None, 0.0) else None,
            "ci_low": None,
            "ci_high": None,
            "ci_kind": None,
            "significant": None,
            "better": _better(spec, b, a),
        }
        if spec.name == "rss_slope_mb_per_10k_requests":
            _slope_row(row, ev_a, ev_b, n_boot, seed + i)
            row["ci_kind"] = "difference" if row["ci_low"] is not None else None
        else:
            _ratio_row(row, samples_a.get(spec.name), samples_b.get(spec.name), n_boot, seed + i)
            row["ci_kind"] = "ratio" if row["ci_low"] is not None else None
        metrics.append(row)
    return {
        "before": before,
        "after": after,
        "before_run": str(run_a),
        "after_run": str(run_b),
        "metrics": metrics,
        "headline": symptom_headline(before, after, metrics),
    }


def symptom_headline(
    before: Mapping[str, Any], after: Mapping[str, Any], metrics: list[dict[str, Any]] | None = None
) -> str:
    """One plain sentence on what the two symptoms say about the fix."""
    sb, sa = before.get("symptom"), after.get("symptom")
    if not sb or not sa:
        which = (
            "either run" if not sb and not sa else ("the before run" if not sb else "the after run")
        )
        return f"No verdict: {which} has no symptom spec in meta.json."
    unknown = [n for n, s in (("before", sb), ("after", sa)) if s.get("value") is None]
    if unknown:
        return (
            f"No verdict: the symptom metric {sb.get('name')} could not be computed for the "
            f"{' and '.join(unknown)} run."
        )
    bp, ap = bool(sb.get("present")), bool(sa.get("present"))
    if bp and not ap:
        text = "Symptom present before, absent after: the fix works."
    elif bp and ap:
        text = "Symptom present before AND after: the change did not remove it."
    elif not bp and not ap:
        text = (
            "Symptom absent in both runs: the before run did not reproduce the incident, "
            "so this comparison proves nothing about the fix."
        )
    else:
        text = "Symptom absent before, present after: the after run is worse (runs swapped?)."
    if sb.get("name") != sa.get("name"):
        text += f" Careful: the runs use different symptoms ({sb.get('name')} vs {sa.get('name')})."
    row = next((m for m in metrics or [] if m["name"] == sb.get("name")), None)
    if row is not None and row["significant"] is False:
        text += f" But the change of {row['name']} is within noise (bootstrap 95% CI)."
    for name, summ in (("before", before), ("after", after)):
        status = summ.get("status")
        if status not in (None, "completed"):
            text += f" The {name} run's status is {status}."
    return text


def _ci_text(row: Mapping[str, Any]) -> str:
    if row.get("ci_low") is None:
        return "n/a"
    if row.get("ci_kind") == "difference":
        return f"Δ [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"
    return f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def _table(metrics: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for m in metrics:
        pct = m["name"] == "error_rate"
        sig = m["significant"]
        out.append(
            {
                "label": m["label"],
                "name": m["name"],
                "before": fmt(m["before"], percent=pct) + (" %" if pct and m["before"] else ""),
                "after": fmt(m["after"], percent=pct) + (" %" if pct and m["after"] else ""),
                "ratio": "n/a" if m["ratio"] is None else f"{m['ratio']:.3g}x",
                "ci": _ci_text(m),
                "significant": "n/a" if sig is None else ("yes" if sig else "no"),
                "better": m["better"] or "",
            }
        )
    return out


def compare(run_a: Path, run_b: Path, out_dir: Path) -> Path:
    """Write comparison.json/.md/.html and plots/*.png into out_dir; returns comparison.html.

    run_a is "before" (usually faulty), run_b "after" (usually fixed).
    """
    run_a, run_b, out_dir = Path(run_a), Path(run_b), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ev_a, ev_b = load_evidence(run_a), load_evidence(run_b)
    result = _compare(run_a, run_b, ev_a, ev_b, n_boot=2000, seed=0)
    (out_dir / "comparison.json").write_bytes(
        orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n"
    )
    plots = compare_plots(ev_a, ev_b, result["before"], result["after"], out_dir / "plots")
    sides = []
    for name, run, summ in (("before", run_a, result["before"]), ("after", run_b, result["after"])):
        cls, verdict = symptom_verdict(summ.get("symptom"))
        report = run / "report.html"
        sides.append(
            {
                "name": name,
                "title": f"{summ.get('scenario') or run.name} / {summ.get('variant') or '?'}",
                "run": Path(os.path.relpath(run, out_dir)).as_posix(),
                "report": Path(os.path.relpath(report, out_dir)).as_posix()
                if report.is_file()
                else None,
                "status": summ.get("status") or "unknown",
                "verdict": verdict,
                "verdict_class": cls,
                "notes": list(summ.get("notes") or []),
            }
        )
    headline = result["headline"]
    context = {
        "headline": headline,
        "headline_class": "absent"
        if headline.startswith("Symptom present before, absent")
        else ("unknown" if headline.startswith("No verdict") else "present"),
        "sides": sides,
        "rows": _table(result["metrics"]),
        "plots": plot_entries(plots, out_dir),
    }
    _, html = write_pair(out_dir, "comparison", context)
    return html
