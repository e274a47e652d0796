"""The observability assets (dashboards/) read by the lab, and the overview dashboard of a
run rendered as one PNG from Prometheus.

Every PromQL expression of the Grafana dashboards and of the Prometheus rules,
and the substitution of Grafana's template variables, so that the tests can
send each expression to a real Prometheus exactly as Grafana would. The runner
calls `snapshot` at the end of a run; `lab dashboard snapshot RUN` does by hand.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import yaml

from lab.errors import LabError

__all__ = [
    "DASHBOARDS_DIR",
    "OVERVIEW",
    "RULES_DIR",
    "PanelQuery",
    "RuleQuery",
    "annotation_queries",
    "default_prometheus_url",
    "panel_queries",
    "rule_queries",
    "snapshot",
    "substitute",
    "template_defaults",
]

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO / "dashboards" / "grafana" / "dashboards"
RULES_DIR = REPO / "dashboards" / "prometheus"
OVERVIEW = DASHBOARDS_DIR / "lab-overview.json"


class PanelQuery(NamedTuple):
    dashboard: str  # the dashboard's title
    panel: str  # the panel's title
    expr: str  # PromQL, with Grafana's template variables still in it


class RuleQuery(NamedTuple):
    group: str
    name: str  # the alert or the recorded series
    expr: str


def _json_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.json")) if path.is_dir() else [path]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves left out."""
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a dashboard is a JSON object")
    return data


def panel_queries(path: Path) -> list[PanelQuery]:
    """(dashboard, panel title, expr) of every panel target, of one dashboard or a folder."""
    out: list[PanelQuery] = []
    for file in _json_files(path):
        board = _load(file)
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append(PanelQuery(board["title"], panel["title"], target["expr"]))
    return out


def annotation_queries(path: Path) -> list[PanelQuery]:
    """(dashboard, 'annotation: NAME', expr) of every Prometheus annotation query."""
    out: list[PanelQuery] = []
    for file in _json_files(path):
        board = _load(file)
        for item in board.get("annotations", {}).get("list", []):
            if item.get("expr"):
                out.append(PanelQuery(board["title"], f"annotation: {item['name']}", item["expr"]))
    return out


def rule_queries(path: Path) -> list[RuleQuery]:
    """(group, alert or record name, expr) of every rule, of one rule file or a folder's *.yml."""
    files = sorted(path.glob("*.yml")) if path.is_dir() else [path]
    out: list[RuleQuery] = []
    for file in files:
        data = yaml.safe_load(file.read_text()) or {}
        for group in data.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                out.append(RuleQuery(group["name"], name, str(rule["expr"]).strip()))
    return out


def template_defaults(path: Path) -> dict[str, str]:
    """Each template variable of a dashboard with the value 'All' stands for (a regex)."""
    out: dict[str, str] = {}
    for item in _load(path).get("templating", {}).get("list", []):
        out[item["name"]] = item.get("allValue") or ".*"
    return out


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?::\w+)?\}|([A-Za-z_]\w*))")


def _duration(seconds: float) -> str:
    millis = max(round(seconds * 1000), 1)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def substitute(
    expr: str,
    *,
    interval_s: float = 15.0,
    scrape_interval_s: float = 1.0,
    range_s: float = 300.0,
    variables: Mapping[str, str] | None = None,
) -> str:
    """The query Grafana would send: its built-in and template variables replaced.

    `$__rate_interval` follows Grafana's rule: max($__interval + scrape interval,
    4 x scrape interval). Template variables take `variables` (a regex each, as
    for a multi-value variable); an unknown variable raises ValueError.
    """
    rate_interval = max(interval_s + scrape_interval_s, 4 * scrape_interval_s)
    builtins = {
        "__rate_interval": _duration(rate_interval),
        "__interval": _duration(interval_s),
        "__interval_ms": str(max(round(interval_s * 1000), 1)),
        "__range": _duration(range_s),
        "__range_s": str(round(range_s)),
        "__range_ms": str(round(range_s * 1000)),
    }
    values = {**builtins, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"unknown template variable ${name} in: {expr}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def default_prometheus_url() -> str:
    from lab.topology import HOST, PROMETHEUS_PORT

    return f"http://{HOST}:{PROMETHEUS_PORT}"


# --- snapshot ----------------------------------------------------------------

_MAX_LEGEND = 8
_COLUMNS = 4


def _when(meta: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = meta.get(key)
        if value:
            try:
                return datetime.fromisoformat(str(value)).timestamp()
            except ValueError:
                raise LabError(f"meta.json: {key} is not an ISO timestamp: {value!r}") from None
    return None


def _load_window(run_dir: Path) -> tuple[float, float]:
    meta_path = run_dir / "meta.json"
    if not meta_path.is_file():
        raise LabError(f"{run_dir} is not a run dir (no meta.json); pass a folder under runs/")
    meta = json.loads(meta_path.read_text())
    start = _when(meta, "load_started_at", "started_at")
    end = _when(meta, "load_ended_at", "ended_at")
    if start is None or end is None or end <= start:
        raise LabError(
            f"{meta_path} has no load window (load_started_at .. load_ended_at or ended_at); "
            "was the run interrupted before its load started?"
        )
    return start, end


_LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def _legend(legend_format: str, labels: Mapping[str, str]) -> str:
    """The panel's legendFormat ('p99 {{route}}') filled in, as Grafana does; else the labels."""
    if legend_format and legend_format != "__auto":
        return _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), legend_format).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if not shown:
        return str(labels.get("__name__", "value"))
    if len(shown) == 1:
        return next(iter(shown.values()))
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def _query_range(
    client: httpx.Client, url: str, expr: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    try:
        response = client.post(
            f"{url}/api/v1/query_range",
            data={"query": expr, "start": start, "end": end, "step": step},
        )
    except httpx.TransportError as exc:
        raise LabError(
            f"Prometheus stopped answering at {url} ({exc}); start it with `make up`"
        ) from None
    body = response.json()
    if body.get("status") != "success":
        raise ValueError(body.get("error", f"HTTP {response.status_code}"))
    return list(body["data"]["result"])


def _scrape_interval(client: httpx.Client, url: str) -> float:
    """Prometheus' global scrape interval (what Grafana's datasource timeInterval says)."""
    from lab.paths import parse_duration

    try:
        text = client.get(f"{url}/api/v1/status/config").json()["data"]["yaml"]
        return parse_duration(yaml.safe_load(text)["global"]["scrape_interval"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return 15.0


def _overview_panels(path: Path) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, unit, [(expr, legendFormat)]) per panel of the overview, in dashboard order."""
    board = _load(path)
    out: list[tuple[str, str, list[tuple[str, str]]]] = []
    for panel in _panels(board.get("panels", [])):
        exprs = [
            (t["expr"], t.get("legendFormat", ""))
            for t in panel.get("targets", [])
            if t.get("expr")
        ]
        if exprs:
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
            out.append((panel["title"], unit, exprs))
    return out


def snapshot(run_dir: Path, prometheus_url: str, out: Path | None = None) -> Path:
    """Every overview panel over the run's load window, as a grid of charts; the PNG's path."""
    from matplotlib.figure import Figure

    start, end = _load_window(run_dir)
    url = prometheus_url.rstrip("/")
    span = end - start
    step = max(1.0, math.ceil(span / 250))
    panels = _overview_panels(OVERVIEW)
    variables = template_defaults(OVERVIEW)

    with httpx.Client(timeout=10.0) as client:
        try:
            client.get(f"{url}/api/v1/status/buildinfo").raise_for_status()
        except httpx.HTTPError:
            raise LabError(
                f"Prometheus is not reachable at {url}; start it with `make up` "
                "(or pass --prometheus URL)"
            ) from None
        scrape_s = _scrape_interval(client, url)
        results: list[tuple[str, str, list[tuple[str, list[float], list[float]]], str]] = []
        for title, unit, exprs in panels:
            lines: list[tuple[str, list[float], list[float]]] = []
            problem = ""
            for expr, legend in exprs:
                query = substitute(
                    expr,
                    interval_s=step,
                    scrape_interval_s=scrape_s,
                    range_s=span,
                    variables=variables,
                )
                try:
                    series = _query_range(client, url, query, start, end, step)
                except ValueError as exc:
                    problem = f"query error: {exc}"
                    continue
                for item in series:
                    xs = [float(t) - start for t, _ in item["values"]]
                    ys = [float(v) for _, v in item["values"]]
                    lines.append((_legend(legend, item["metric"]), xs, ys))
            results.append((title, unit, lines, problem))

    rows = max(1, math.ceil(len(results) / _COLUMNS))
    figure = Figure(figsize=(4.2 * _COLUMNS, 2.9 * rows), layout="constrained")
    started = datetime.fromtimestamp(start).astimezone().isoformat(timespec="seconds")
    figure.suptitle(f"{run_dir.name}: Lab overview, load from {started} ({span:.0f} s)")
    for index, (title, unit, lines, problem) in enumerate(results):
        ax = figure.add_subplot(rows, _COLUMNS, index + 1)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, span)
        ax.set_xlabel("s since load start", fontsize=7)
        if unit and unit != "short":
            ax.set_ylabel(unit, fontsize=7)
        for label, xs, ys in lines:
            ax.plot(xs, ys, linewidth=1, label=label)
        if lines:
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(handles[:_MAX_LEGEND], labels[:_MAX_LEGEND], fontsize=6, loc="best")
        else:
            ax.text(0.5, 0.5, problem or "no data", ha="center", va="center", fontsize=8,
                    color="grey", transform=ax.transAxes, wrap=True)  # fmt: skip
    target = out or run_dir / "plots" / "dashboard.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=100)
    return target
