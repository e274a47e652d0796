"""Render reports and comparisons to markdown and self-contained HTML (jinja2 templates)."""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import orjson

from .metrics import KEY_METRICS, Group, Metric

__all__ = [
    "fmt",
    "fmt_metric",
    "key_rows",
    "meta_sections",
    "plot_entries",
    "render_template",
    "source_text",
    "symptom_verdict",
    "write_pair",
]

TEMPLATES_DIR = Path(__file__).parent / "templates"


def fmt(value: Any, percent: bool = False) -> str:
    """A number for people: "n/a" for None/NaN, a few significant digits otherwise."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a" if math.isnan(value) else str(value)
        if percent:
            return f"{100 * value:.3g}"
        a = abs(value)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{value:,.0f}"
        if a >= 10:
            return f"{value:.1f}"
        if a >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return fmt(value) if isinstance(value, int | float) else str(value)


def symptom_verdict(symptom: Mapping[str, Any] | None) -> tuple[str, str]:
    """`(css class, sentence)` about the symptom of one run."""
    if not symptom:
        return "unknown", "Symptom not evaluated: meta.json has no symptom spec."
    name, op, thr = symptom.get("name"), symptom.get("op"), symptom.get("threshold")
    desc = symptom.get("description") or ""
    tail = f" ({desc})" if desc else ""
    value = symptom.get("value")
    if value is None:
        return "unknown", f"Symptom UNKNOWN: {name} could not be computed{tail}."
    if symptom.get("present"):
        return "present", f"Symptom PRESENT: {name} = {fmt(value)} {op} {fmt(thr)}{tail}"
    return "absent", f"Symptom absent: {name} = {fmt(value)}, not {op} {fmt(thr)}{tail}"


def _bound(value: Any) -> str:
    # A bucket's bound is a round number of the app's histogram: shown as declared.
    return f"{value:,g}" if isinstance(value, int | float) and math.isfinite(value) else fmt(value)


def fmt_metric(metric: Metric, summary: Mapping[str, Any]) -> str:
    """A metric's number in a summary, for people; a bucket's upper end reads as the
    bound it is ("≤ 500"), and a quantile above the top bucket as its lower end."""
    value = summary.get(metric.name)
    if metric.lower_field is None:
        return fmt(value, percent=metric.unit == "%")
    low = summary.get(metric.lower_field)
    if value is None:
        return "n/a" if low is None else f"> {_bound(low)}"
    return f"≤ {_bound(value)}"


def source_text(metric: Metric, summary: Mapping[str, Any]) -> str:
    """Where a metric's number comes from; for a bucket, the bucket itself."""
    text = metric.source_in(summary)
    if metric.lower_field is not None:
        value, low = summary.get(metric.name), summary.get(metric.lower_field)
        if value is not None and low is not None:
            text += f": the exact value is in ({_bound(low)}, {_bound(value)}] {metric.unit}"
        elif low is not None:
            text += f": the exact value is above {_bound(low)} {metric.unit}, the top bucket"
    return text


def key_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    for m in KEY_METRICS:
        value = summary.get(m.name)
        if value is None and Group.KEY_WHEN_MEASURED in m.groups:
            continue
        rows.append(
            {
                "key": m.name,
                "label": m.label,
                "value": fmt_metric(m, summary),
                "unit": m.unit,
                "source": source_text(m, summary),
            }
        )
    return rows


def meta_sections(meta: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The parameters of the run, grouped, as strings."""

    def items(value: Any) -> list[tuple[str, str]]:
        if isinstance(value, Mapping):
            return [(str(k), _plain(v)) for k, v in value.items()]
        return [] if value is None else [("value", _plain(value))]

    scenario = [
        (k, _plain(meta[k])) for k in ("scenario", "title", "kind", "variant", "seeds") if k in meta
    ]
    run = [
        (k, _plain(meta[k]))
        for k in (
            "run_id",
            "status",
            "error",
            "profile",
            "started_at",
            "load_started_at",
            "ended_at",
            "git_commit",
        )
        if meta.get(k) is not None
    ]
    sections = [
        ("Scenario", scenario),
        ("Scenario parameters", items(meta.get("params"))),
        ("Load", items(meta.get("load"))),
        ("App", items(meta.get("app"))),
        ("Run", run),
        ("Versions", items(meta.get("versions"))),
        ("Machine", items(meta.get("machine"))),
    ]
    return [(title, rows) for title, rows in sections if rows]


def plot_entries(paths: Iterable[Path], base_dir: Path) -> list[dict[str, str]]:
    """Per plot: name, path relative to base_dir (for markdown) and base64 PNG (for HTML)."""
    out = []
    for path in paths:
        out.append(
            {
                "name": path.stem.replace("_", " "),
                "rel": Path(os.path.relpath(path, base_dir)).as_posix(),
                "b64": base64.b64encode(path.read_bytes()).decode("ascii"),
            }
        )
    return out


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=lambda name: name is not None and ".html" in name,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = fmt
    env.filters["md"] = _md_cell
    return env


def render_template(name: str, context: Mapping[str, Any]) -> str:
    return _environment().get_template(name).render(**context)


def write_pair(out_dir: Path, stem: str, context: Mapping[str, Any]) -> tuple[Path, Path]:
    """Render `<stem>.md.j2` and `<stem>.html.j2` into out_dir; returns (md, html) paths."""
    md = out_dir / f"{stem}.md"
    html = out_dir / f"{stem}.html"
    md.write_text(render_template(f"{stem}.md.j2", context), encoding="utf-8")
    html.write_text(render_template(f"{stem}.html.j2", context), encoding="utf-8")
    return md, html
