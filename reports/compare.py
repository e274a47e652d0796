"""`compare`: before/after comparison of two run dirs, with moving-block bootstrap CIs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from faults.symptom import finite

from .evidence import Evidence, load_evidence
from .metrics import COMPARED_METRICS, METRICS, Better, Group, Metric
from .plots import compare_plots
from .render import fmt, fmt_metric, plot_entries, source_text, symptom_verdict, write_pair
from .samples import Samples
from .stats import bootstrap_difference, bootstrap_ratio
from .summary import load_or_build_summary

__all__ = ["compare", "compare_runs", "load_caveat", "symptom_headline"]

# Fewer pieces (seconds) than this, and a resample cannot tell a change from noise.
MIN_PIECES = 4


def _better(spec: Metric, before: float | None, after: float | None) -> str | None:
    if spec.better is None or before is None or after is None or before == after:
        return None
    after_higher = after > before
    return "after" if after_higher == (spec.better == "higher") else "before"


def _ci(
    row: dict[str, Any], samples: Samples, ev_a: Evidence, ev_b: Evidence, n_boot: int, seed: int
) -> None:
    """The row's CI, of the very statistic the row reports (see `bootstrap_ratio`).

    The point the interval is for is the row's own: after / before of the two
    summaries, or after - before for a difference. So the point is inside its CI
    by construction, and "significant" is the CI excluding 1 (or 0).
    """
    pa, pb = samples.of(ev_a), samples.of(ev_b)
    if pa is None or pb is None or pa.n < MIN_PIECES or pb.n < MIN_PIECES:
        return
    before, after = row["before"], row["after"]
    if samples.compare == "difference":
        if before is None or after is None:
            return
        row["difference"] = after - before
        found = bootstrap_difference(pa, pb, point=after - before, n_boot=n_boot, seed=seed)
        null = 0.0
    else:
        if row["ratio"] is None:
            return
        found = bootstrap_ratio(pa, pb, point=row["ratio"], n_boot=n_boot, seed=seed)
        null = 1.0
    if found.defined:
        row.update(
            ci_low=found.low,
            ci_high=found.high,
            ci_kind=samples.compare,
            ci_widened=found.widened,
            significant=found.excludes(null),
        )


def compare_runs(run_a: Path, run_b: Path, *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The comparison dict (what comparison.json holds) of before=run_a and after=run_b."""
    run_a, run_b = Path(run_a), Path(run_b)
    return _compare(
        run_a, run_b, load_evidence(run_a), load_evidence(run_b), n_boot=n_boot, seed=seed
    )


def _symptom_specs(summary: Mapping[str, Any]) -> list[Metric]:
    """The scenario's own symptom metric, when the compared ones do not have it
    (peak RSS growth, cores used, rows per second...): the number the fix is about."""
    symptom = summary.get("symptom") or {}
    name, op = symptom.get("name"), symptom.get("op")
    # A route's number ("p50_ms of /x / ...") is no summary field of its own.
    metric = METRICS.get(name) if isinstance(name, str) else None
    if metric is None or Group.COMPARED in metric.groups:
        return []
    # The symptom's operator says which way is sick for this scenario; the label says
    # which row it is (its unit, if any, is in the label it gets).
    better: Better = "higher" if op in ("<", "<=") else "lower"
    return [replace(metric, label=f"{name} (the symptom)", unit="", better=better)]


def _compare(
    run_a: Path, run_b: Path, ev_a: Evidence, ev_b: Evidence, *, n_boot: int, seed: int
) -> dict[str, Any]:
    before, after = load_or_build_summary(run_a), load_or_build_summary(run_b)
    metrics: list[dict[str, Any]] = []
    for i, spec in enumerate([*COMPARED_METRICS, *_symptom_specs(before)]):
        b, a = finite(before.get(spec.name)), finite(after.get(spec.name))
        source_b, source_a = source_text(spec, before), source_text(spec, after)
        row: dict[str, Any] = {
            "name": spec.name,
            "label": spec.title,
            "source": source_b
            if source_b == source_a
            else f"before: {source_b}; after: {source_a}",
            "before": b,
            "after": a,
            "ratio": finite(a / b) if a is not None and b not in (None, 0.0) else None,
            "difference": None,
            "ci_low": None,
            "ci_high": None,
            "ci_kind": None,
            "ci_widened": None,
            "significant": None,
            "better": _better(spec, b, a),
        }
        if spec.samples is not None:
            _ci(row, spec.samples, ev_a, ev_b, n_boot, seed + i)
        metrics.append(row)
    return {
        "before": before,
        "after": after,
        "before_run": str(run_a),
        "after_run": str(run_b),
        "metrics": metrics,
        "headline": symptom_headline(before, after, metrics) + load_caveat(before, after),
        "diagnosis": diagnosis_change(run_a, run_b),
    }


def diagnosis_change(run_a: Path, run_b: Path) -> dict[str, Any]:
    """Each run's diagnosis (reports/diagnosis/, blind) and whether the after run
    still shows the cause named in the before run."""
    from .diagnosis import diagnose

    before, after = diagnose(run_a), diagnose(run_b)
    cause = before.top
    if before.verdict == "healthy":
        removed = None
        sentence = "The before run was diagnosed healthy: the diagnosis names no cause to remove."
    elif cause in after.ranked():
        removed = False
        sentence = f"The diagnosed cause, {cause}, is still there after the change."
    else:
        removed = True
        now = "healthy" if after.verdict == "healthy" else f"its top cause is {after.top}"
        sentence = f"The change removed the diagnosed cause, {cause}: the after run is {now}."
    return {
        "before": before.as_dict(),
        "after": after.as_dict(),
        "removed": removed,
        "sentence": sentence,
    }


def _load_text(summary: Mapping[str, Any]) -> str:
    rate = finite(summary.get("offered_rps"))
    if summary.get("load_model") == "open" and rate is not None:
        return f"open-model at {rate:g} req/s offered"
    return "closed-model"


def load_caveat(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """A sentence for the headline when the runs were loaded differently, else "".

    An open run's latencies run from the intended send time and a closed run's
    from the actual send, and a closed run's load drops when the app stalls: the
    ratio of the two is no like-for-like comparison. Neither is that of two open
    runs offered different rates.
    """
    models = [s.get("load_model") or "closed" for s in (before, after)]
    rates = [finite(s.get("offered_rps")) for s in (before, after)]
    if models[0] == models[1] and (models[0] == "closed" or rates[0] == rates[1]):
        return ""
    what = "latencies are not measured alike" if models[0] != models[1] else "loads differ"
    return (
        f" Not like-for-like: the before run is {_load_text(before)}, the after run "
        f"{_load_text(after)}: their {what}, so the ratios compare different loads."
    )


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
        return f"Δ {fmt(row['difference'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"
    return f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def _shown(metric: Metric | None, summary: Mapping[str, Any], value: float | None) -> str:
    """A row's before or after number, for people (a bucket's upper end reads as a bound)."""
    if metric is None:
        return fmt(value)
    text = fmt_metric(metric, summary)
    return text + " %" if metric.unit == "%" and value else text


def _table(
    metrics: list[dict[str, Any]], before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[dict[str, str]]:
    out = []
    for m in metrics:
        metric = METRICS.get(m["name"])
        sig = m["significant"]
        out.append(
            {
                "label": m["label"],
                "name": m["name"],
                "source": m["source"],
                "before": _shown(metric, before, m["before"]),
                "after": _shown(metric, after, m["after"]),
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
        "diagnosis": result["diagnosis"],
        "headline_class": "absent"
        if headline.startswith("Symptom present before, absent")
        else ("unknown" if headline.startswith("No verdict") else "present"),
        "sides": sides,
        "rows": _table(result["metrics"], result["before"], result["after"]),
        "plots": plot_entries(plots, out_dir),
    }
    _, html = write_pair(out_dir, "comparison", context)
    return html
