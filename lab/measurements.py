"""The lab's latest measurement of a scenario, for its page: numbers, when, where, from what.

A page cites numbers measured by the lab, never numbers typed into the scenario
module. They come from the newest of:

- a local faulty/fixed pair under the runs root (`runs/` by default): one that was
  measured together (a `lab bench` catalogue pair in runs/bench/<time>/bench.json,
  or a `lab prove` / `lab compare` pair named by a comparison.json) is preferred
  over the latest faulty and the latest fixed run found on their own;
- the committed measurement file, docs/measurements.json (`MeasurementFile`), which
  `lab bench` updates with each pair it measured, so that a fresh clone's pages
  show the numbers of the last bench run.

Only what the pages cite is kept: the summary numbers the scenario's answers and
its symptom name, and the client p95 and throughput. Reading never imports the
app or `reports/` (`lab scenarios` stays fast and app-free).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from faults.symptom import finite as finite_number

__all__ = [
    "CURVE_FIELDS",
    "CURVE_KIND",
    "CURVE_TOLERANCE",
    "DEFAULT_FILE",
    "KINDS",
    "NOT_MEASURED",
    "SWEEP_FIELDS",
    "SWEEP_KIND",
    "SYMPTOM_METRIC",
    "CurveMeasurement",
    "MeasurementFile",
    "Pair",
    "Provenance",
    "StepsMeasurement",
    "SweepMeasurement",
    "cited_metrics",
    "curve_markdown",
    "finite_number",
    "fmt",
    "latest",
    "latest_curve",
    "latest_steps",
    "latest_sweep",
    "machine_now",
    "pair_from_run_dirs",
    "placeholders",
    "render",
    "sweep_markdown",
]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO / "docs" / "measurements.json"
NOT_MEASURED = "(not measured yet)"
KINDS = ("faulty", "fixed", "ratio")
# `{sweep.throughput_at_slo}`: a number of the scenario's rate sweep, not of its pair.
SWEEP_KIND = "sweep"
SWEEP_FIELDS = ("throughput_at_slo",)
# Any `{word.word}`: a placeholder of an unknown kind is caught by the page test too.
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\.([A-Za-z0-9_]+)\}")
_RENDERED = re.compile(_PLACEHOLDER.pattern + "(x?)")  # a ratio's "x" suffix, kept with it
# `{faulty.symptom}`: the symptom's value in that run (a route's p50, a ratio of two
# routes' ...), which is not always a top-level summary number.
SYMPTOM_METRIC = "symptom"
# Always shown in the "Measured" block, whatever the answers cite.
BASE_METRICS = ("p95_ms", "rps")


@dataclass(frozen=True)
class Provenance:
    """Where a measurement came from."""

    source: str  # "bench", "prove/compare" or "runs" (two runs found on their own)
    where: str  # the run dir(s) or bench dir, relative to the repo when inside it
    measured_at: str  # ISO 8601, UTC: when the (first) run started
    hostname: str | None
    cpus: int | None
    git_commit: str | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        cpus = data.get("cpus")
        return cls(
            source=str(data.get("source") or ""),
            where=str(data.get("where") or ""),
            measured_at=str(data.get("measured_at") or ""),
            hostname=data.get("hostname"),
            cpus=cpus if isinstance(cpus, int) else None,
            git_commit=data.get("git_commit"),
        )

    def line(self) -> str:
        commit = (self.git_commit or "unknown")[:10]
        host = self.hostname or "unknown host"
        cpus = f"{self.cpus} CPUs" if self.cpus else "CPUs unknown"
        when = self.measured_at[:16].replace("T", " ")
        return (
            f"Source: {self.source}, {self.where}; measured {when} UTC "
            f"on {host} ({cpus}), commit {commit}."
        )


@dataclass(frozen=True)
class Pair:
    """One scenario's faulty and fixed numbers, measured on one machine."""

    slug: str
    faulty: Mapping[str, float]
    fixed: Mapping[str, float]
    symptom: Mapping[str, Any]  # metric, op, threshold, faulty/fixed value and present
    provenance: Provenance
    together: bool  # measured as a pair (bench, prove), not two unrelated runs

    def value(self, kind: str, metric: str) -> float | None:
        if metric == SYMPTOM_METRIC:  # the symptom's own value, as each run judged it
            values = {k: finite_number(self.symptom.get(f"{k}_value")) for k in ("faulty", "fixed")}
            if kind != "ratio":
                return values.get(kind)
            faulty, fixed = values["faulty"], values["fixed"]
            return faulty / fixed if faulty is not None and fixed else None
        if kind == "ratio":
            faulty, fixed = self.faulty.get(metric), self.fixed.get(metric)
            if faulty is None or fixed is None or fixed == 0:
                return None
            return faulty / fixed
        return (self.faulty if kind == "faulty" else self.fixed).get(metric)

    def as_dict(self) -> dict[str, Any]:
        return {
            "faulty": dict(self.faulty), "fixed": dict(self.fixed),
            "symptom": dict(self.symptom), "together": self.together,
            **asdict(self.provenance),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, slug: str, data: Mapping[str, Any]) -> Pair:
        return cls(
            slug=slug,
            faulty=_numbers(data.get("faulty")),
            fixed=_numbers(data.get("fixed")),
            symptom=dict(data.get("symptom") or {}),
            provenance=Provenance.from_dict(data),
            together=bool(data.get("together")),
        )


@dataclass(frozen=True)
class StepsMeasurement:
    """A scenario's step-by-step bench (heavy-json's steps): one row per step."""

    slug: str
    rows: int
    steps: tuple[Mapping[str, Any], ...]
    provenance: Provenance

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "steps": [dict(s) for s in self.steps],
                **asdict(self.provenance)}  # fmt: skip

    @classmethod
    def from_dict(cls, slug: str, data: Mapping[str, Any]) -> StepsMeasurement:
        return cls(
            slug=slug,
            rows=int(data.get("rows") or 0),
            steps=tuple(dict(s) for s in data.get("steps") or ()),
            provenance=Provenance.from_dict(data),
        )


@dataclass(frozen=True)
class SweepMeasurement:
    """A scenario's rate sweep (performance-testing's throughput at its SLO): one
    point per offered rate of an open-model run, lowest rate first."""

    slug: str
    variant: str
    # The SLO's threshold (ms). Named for the first SLO swept, a p99; the metric it
    # bounds is `slo_metric` (of `slo_route`, when it is one route's).
    slo_p99_ms: float
    step_s: float  # each rate's run
    points: tuple[Mapping[str, Any], ...]  # rate, rps, p99_ms, value, meets, run
    provenance: Provenance
    slo_metric: str = "p99_ms"
    slo_route: str | None = None

    @property
    def throughput_at_slo(self) -> float | None:
        """The highest offered rate whose run met the SLO, every lower rate meeting it too."""
        best = None
        for point in self.points:
            if not point.get("meets"):
                break
            best = float(point["rate"])
        return best

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "slo_p99_ms": self.slo_p99_ms, "step_s": self.step_s,
                "slo_metric": self.slo_metric, "slo_route": self.slo_route,
                "points": [dict(p) for p in self.points],
                "throughput_at_slo": self.throughput_at_slo, **asdict(self.provenance)}  # fmt: skip

    @classmethod
    def from_dict(cls, slug: str, data: Mapping[str, Any]) -> SweepMeasurement:
        return cls(
            slug=slug,
            variant=str(data.get("variant") or "fixed"),
            slo_p99_ms=float(data.get("slo_p99_ms") or 0.0),
            slo_metric=str(data.get("slo_metric") or "p99_ms"),
            slo_route=data.get("slo_route"),
            step_s=float(data.get("step_s") or 0.0),
            points=tuple(dict(p) for p in data.get("points") or ()),
            provenance=Provenance.from_dict(data),
        )


# `{curve.cpu_uvicorn_best_workers}`: a number of the scenario's curve; the name says
# which series (mix, class) and which point (its best, or the one at N on the axis).
CURVE_KIND = "curve"
_CURVE_FIELD = re.compile(
    r"^(?P<mix>[a-z]+)_(?P<cls>[a-z]+)_(?P<at>best|\d+)_(?P<metric>[a-z0-9_]+)$"
)
# A curve's own numbers, beside the summary metrics its points keep: the axis
# values, and sse-logs' per 1,000 clients and its lines' arrival.
CURVE_FIELDS = ("workers", "clients", "rss_per_1000_mb", "cpu_per_1000_cores", "line_p50_ms")
# The columns a worker curve's table shows for each class (its default).
WORKER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rps", "req/s"),
    ("p99_ms", "p99 ms"),
    ("app_cpu_cores", "cores"),
)
# A point within this share of its series' highest throughput counts as reaching it:
# two runs of one setup differ by a few percent on a shared box, so "the best" is
# the fewest workers that get there, not whichever point noise put on top.
CURVE_TOLERANCE = 0.05


@dataclass(frozen=True)
class CurveMeasurement:
    """Numbers against a count, one series per (mix, class), one point per bounded run
    of `step_s`. worker-sizing's: throughput and latency against the worker count, per
    worker class ("uvicorn", "gthread") on each mix ("cpu", "io"); sse-logs': the app's
    memory and CPU against the clients connected, per variant ("pushed", "polled") on
    each transport ("sse", "ws"). `axis` names the count; `columns` what its table shows
    of each class: (point key, header)."""

    slug: str
    step_s: float
    # mix, worker_class, <axis>, users, rps, p50_ms, p99_ms, app_cpu_cores, rss_end_mb,
    # error_rate, run (and whatever `columns` names)
    points: tuple[Mapping[str, Any], ...]
    provenance: Provenance
    axis: str = "workers"
    columns: tuple[tuple[str, str], ...] = WORKER_COLUMNS

    def series(self, mix: str, worker_class: str) -> list[Mapping[str, Any]]:
        found = [p for p in self.points
                 if p.get("mix") == mix and p.get("worker_class") == worker_class]  # fmt: skip
        return sorted(found, key=lambda p: int(p.get(self.axis) or 0))

    def best(self, mix: str, worker_class: str) -> Mapping[str, Any] | None:
        """The fewest workers within CURVE_TOLERANCE of the series' highest throughput."""
        measured = [p for p in self.series(mix, worker_class) if finite_number(p.get("rps"))]
        if not measured:
            return None
        top = max(float(p["rps"]) for p in measured)
        return next(p for p in measured if float(p["rps"]) >= top * (1 - CURVE_TOLERANCE))

    def value(self, name: str) -> float | None:
        """A placeholder's number: `<mix>_<class>_<best|N>_<metric>`, e.g.
        io_gthread_best_rps, cpu_uvicorn_1_p99_ms, cpu_uvicorn_best_workers."""
        match = _CURVE_FIELD.match(name)
        if match is None:
            return None
        mix, cls, at, metric = match.group("mix", "cls", "at", "metric")
        if at == "best":
            point = self.best(mix, cls)
        else:
            point = next((p for p in self.series(mix, cls) if p.get(self.axis) == int(at)), None)
        return finite_number(point.get(metric)) if point else None

    @staticmethod
    def names_a_field(name: str) -> bool:
        """Whether `name` has a curve placeholder's shape (the page test checks each)."""
        return _CURVE_FIELD.match(name) is not None

    def as_dict(self) -> dict[str, Any]:
        return {"step_s": self.step_s, "axis": self.axis,
                "columns": [list(c) for c in self.columns],
                "points": [dict(p) for p in self.points], **asdict(self.provenance)}  # fmt: skip

    @classmethod
    def from_dict(cls, slug: str, data: Mapping[str, Any]) -> CurveMeasurement:
        columns = tuple((str(k), str(h)) for k, h in data.get("columns") or WORKER_COLUMNS)
        return cls(
            slug=slug,
            step_s=float(data.get("step_s") or 0.0),
            points=tuple(dict(p) for p in data.get("points") or ()),
            provenance=Provenance.from_dict(data),
            axis=str(data.get("axis") or "workers"),
            columns=columns,
        )


# --- the committed file ------------------------------------------------------


@dataclass
class MeasurementFile:
    """docs/measurements.json: each scenario's last benched pair (and steps), committed.

    The one owner of the file's layout. `FORMAT` is bumped when a key changes
    meaning; a file of another format is ignored (the pages then say "not measured
    yet") and rewritten whole by the next bench.
    """

    path: Path = DEFAULT_FILE
    pairs: dict[str, Pair] = field(default_factory=dict)
    steps: dict[str, StepsMeasurement] = field(default_factory=dict)
    # Added in format 1 without a bump: a new key, which older readers ignore.
    sweeps: dict[str, SweepMeasurement] = field(default_factory=dict)
    curves: dict[str, CurveMeasurement] = field(default_factory=dict)  # the same, later

    FORMAT = 1

    @classmethod
    def load(cls, path: Path = DEFAULT_FILE) -> MeasurementFile:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            return cls(path)
        pairs = {s: Pair.from_dict(s, d) for s, d in (data.get("scenarios") or {}).items()}
        steps = {s: StepsMeasurement.from_dict(s, d) for s, d in (data.get("steps") or {}).items()}
        sweeps = {
            s: SweepMeasurement.from_dict(s, d) for s, d in (data.get("sweeps") or {}).items()
        }
        curves = {
            s: CurveMeasurement.from_dict(s, d) for s, d in (data.get("curves") or {}).items()
        }
        return cls(path, pairs, steps, sweeps, curves)

    @classmethod
    def store(
        cls, path: Path, measured: StepsMeasurement | SweepMeasurement | CurveMeasurement
    ) -> None:
        """One bench part's measurement in the file at `path`, in place of the scenario's
        last of that kind; the rest of the file kept."""
        stored = cls.load(path)
        if isinstance(measured, StepsMeasurement):
            stored.steps[measured.slug] = measured
        elif isinstance(measured, SweepMeasurement):
            stored.sweeps[measured.slug] = measured
        else:
            stored.curves[measured.slug] = measured
        stored.save()

    def save(self) -> None:
        data = {
            "format": self.FORMAT,
            "scenarios": {s: self.pairs[s].as_dict() for s in sorted(self.pairs)},
            "steps": {s: self.steps[s].as_dict() for s in sorted(self.steps)},
            "sweeps": {s: self.sweeps[s].as_dict() for s in sorted(self.sweeps)},
            "curves": {s: self.curves[s].as_dict() for s in sorted(self.curves)},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        temp.replace(self.path)


# --- reading run dirs --------------------------------------------------------


def _numbers(data: Any) -> dict[str, float]:
    if not isinstance(data, Mapping):
        return {}
    out = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[str(key)] = float(value)
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _shown(path: Path) -> str:
    """A path relative to the repo when it is inside it, else absolute."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(REPO))
    except ValueError:
        return str(resolved)


@dataclass(frozen=True)
class _Run:
    path: Path
    meta: Mapping[str, Any]
    summary: Mapping[str, Any]

    @property
    def started_at(self) -> str:
        return str(self.meta.get("started_at") or "")


def _run(path: Path) -> _Run | None:
    meta, summary = _read_json(path / "meta.json"), _read_json(path / "summary.json")
    if meta is None or summary is None or meta.get("status") != "completed":
        return None
    return _Run(path, meta, summary)


def pair_from_run_dirs(
    slug: str, faulty_dir: Path, fixed_dir: Path, source: str, where: str | None,
    metrics: Iterable[str],
) -> Pair | None:  # fmt: skip
    """The pair of two completed run dirs of `slug`, keeping `metrics`; None otherwise."""
    faulty, fixed = _run(faulty_dir), _run(fixed_dir)
    if faulty is None or fixed is None:
        return None
    for run, variant in ((faulty, "faulty"), (fixed, "fixed")):
        if run.meta.get("scenario") != slug or run.meta.get("variant") != variant:
            return None
    return _pair(slug, faulty, fixed, source, where, metrics, together=True)


def _pair(
    slug: str, faulty: _Run, fixed: _Run, source: str, where: str | None,
    metrics: Iterable[str], together: bool,
) -> Pair:  # fmt: skip
    keep = {*metrics, *BASE_METRICS}
    spec = faulty.meta.get("symptom") or {}
    symptom: dict[str, Any] = {k: spec.get(k) for k in ("metric", "op", "threshold")}
    for name, run in (("faulty", faulty), ("fixed", fixed)):
        result = run.summary.get("symptom") or {}
        symptom[f"{name}_value"] = result.get("value")
        symptom[f"{name}_present"] = result.get("present")
    machine = faulty.meta.get("machine") or {}
    return Pair(
        slug=slug,
        faulty={k: v for k, v in _numbers(faulty.summary).items() if k in keep},
        fixed={k: v for k, v in _numbers(fixed.summary).items() if k in keep},
        symptom=symptom,
        provenance=Provenance(
            source=source,
            where=where or f"{_shown(faulty.path)} and {_shown(fixed.path)}",
            measured_at=faulty.started_at,
            hostname=machine.get("hostname"),
            cpus=machine.get("cpus"),
            git_commit=faulty.meta.get("git_commit"),
        ),
        together=together,
    )


def _walk(root: Path, name: str) -> Iterator[Path]:
    """Directories under `root` holding `name`; a run dir's own subdirectories are skipped."""
    for current, dirs, files in os.walk(root):
        if name in files:
            yield Path(current)
        if "meta.json" in files:  # a run dir: profile/, plots/ hold no runs
            dirs[:] = []


def _locate(run: str, near: Path) -> Path:
    """A run dir that a bench.json or comparison.json names: as written (relative to
    where the lab ran), or by its name in `near` (the runs root was moved or copied)."""
    path = Path(run)
    return path if (path / "meta.json").is_file() else near / path.name


def _together(slug: str, root: Path, metrics: tuple[str, ...]) -> Iterator[Pair]:
    for bench_dir in _walk(root, "bench.json"):
        bench = _read_json(bench_dir / "bench.json") or {}
        for row in (bench.get("catalogue") or {}).get("rows") or ():
            if row.get("slug") == slug and row.get("faulty_run") and row.get("fixed_run"):
                pair = pair_from_run_dirs(
                    slug, _locate(row["faulty_run"], bench_dir / "runs"),
                    _locate(row["fixed_run"], bench_dir / "runs"),
                    "bench", _shown(bench_dir / "bench.json"), metrics,
                )  # fmt: skip
                if pair:
                    yield pair
    for compare_dir in _walk(root, "comparison.json"):
        comparison = _read_json(compare_dir / "comparison.json") or {}
        before, after = comparison.get("before_run"), comparison.get("after_run")
        if before and after:
            pair = pair_from_run_dirs(
                slug, _locate(before, compare_dir.parent), _locate(after, compare_dir.parent),
                "prove/compare", _shown(compare_dir), metrics,
            )  # fmt: skip
            if pair:
                yield pair


def _unrelated(slug: str, root: Path, metrics: tuple[str, ...]) -> Pair | None:
    newest: dict[str, _Run] = {}
    for run_dir in _walk(root, "meta.json"):
        run = _run(run_dir)
        if run is None or run.meta.get("scenario") != slug:
            continue
        variant = str(run.meta.get("variant"))
        if variant in KINDS[:2] and run.started_at > getattr(newest.get(variant), "started_at", ""):
            newest[variant] = run
    if len(newest) < 2:
        return None
    return _pair(slug, newest["faulty"], newest["fixed"], "runs", None, metrics, together=False)


def latest(
    slug: str, metrics: Iterable[str] = (), root: Path = Path("runs"),
    committed: Path = DEFAULT_FILE,
) -> Pair | None:  # fmt: skip
    """The newest pair measured together under `root`, else the newest two runs; the
    committed file's pair when it is newer (or nothing local exists)."""
    wanted = tuple(metrics)
    local: Pair | None = None
    if root.is_dir():
        pairs = list(_together(slug, root, wanted))
        local = (max(pairs, key=lambda p: p.provenance.measured_at) if pairs
                 else _unrelated(slug, root, wanted))  # fmt: skip
    stored = MeasurementFile.load(committed).pairs.get(slug)
    if local is None or (stored and stored.provenance.measured_at > local.provenance.measured_at):
        return stored
    return local


def latest_steps(
    slug: str, root: Path = Path("runs"), committed: Path = DEFAULT_FILE
) -> StepsMeasurement | None:
    """The newest step-by-step bench of `slug`: a bench.json's `steps` part, or the file's."""
    stored = MeasurementFile.load(committed).steps.get(slug)
    return _newest(stored, _bench_parts(root, "steps", slug, StepsMeasurement.from_dict))


def latest_sweep(
    slug: str, root: Path = Path("runs"), committed: Path = DEFAULT_FILE
) -> SweepMeasurement | None:
    """The newest rate sweep of `slug`: a bench.json's `sweep` part, or the file's."""
    stored = MeasurementFile.load(committed).sweeps.get(slug)
    return _newest(stored, _bench_parts(root, "sweep", slug, SweepMeasurement.from_dict))


def latest_curve(
    slug: str, root: Path = Path("runs"), committed: Path = DEFAULT_FILE
) -> CurveMeasurement | None:
    """The newest worker curve of `slug`: a bench.json's `curve` part, or the file's."""
    stored = MeasurementFile.load(committed).curves.get(slug)
    return _newest(stored, _bench_parts(root, "curve", slug, CurveMeasurement.from_dict))


class _Measured(Protocol):
    @property
    def provenance(self) -> Provenance: ...


_M = TypeVar("_M", bound=_Measured)


def _bench_parts(
    root: Path, key: str, slug: str, parse: Callable[[str, Mapping[str, Any]], _M]
) -> Iterator[_M]:
    """`slug`'s entry of the part `key` of every bench.json under `root`."""
    if not root.is_dir():
        return
    for bench_dir in _walk(root, "bench.json"):
        part = ((_read_json(bench_dir / "bench.json") or {}).get(key) or {}).get(slug)
        if part:
            yield parse(slug, part)


def _newest(stored: _M | None, found: Iterable[_M]) -> _M | None:
    measured = [m for m in (stored, *found) if m is not None]
    return max(measured, key=lambda m: m.provenance.measured_at) if measured else None


def machine_now(source: str, where: str) -> Provenance:
    """The provenance of a measurement taken now, in this process, on this machine:
    described as a run's meta.json describes it (lab/run_record.py)."""
    from lab.run_record import Machine, git_commit  # psutil: only when measuring

    machine = Machine.this()
    return Provenance(
        source=source,
        where=where,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        hostname=machine.hostname,
        cpus=machine.cpus,
        git_commit=git_commit(),
    )


# --- rendering ---------------------------------------------------------------


def placeholders(text: str) -> list[tuple[str, str]]:
    """The (kind, metric) of every `{kind.metric}` in an answer."""
    return _PLACEHOLDER.findall(text)


def cited_metrics(texts: Iterable[str]) -> set[str]:
    """The summary metrics the texts cite (a pair's: not the sweep's or the curve's
    fields, nor `symptom`, which the pair keeps apart)."""
    return {
        metric for text in texts for kind, metric in placeholders(text)
        if kind not in (SWEEP_KIND, CURVE_KIND) and metric != SYMPTOM_METRIC
    }  # fmt: skip


def fmt(value: float | None) -> str:
    """Three significant digits; thousands separated; NOT_MEASURED for None."""
    if value is None:
        return NOT_MEASURED
    if value == 0:
        return "0"
    decimals = 2 - math.floor(math.log10(abs(value)))
    rounded = round(value, decimals)
    return f"{rounded:,.0f}" if decimals <= 0 else f"{rounded:.{decimals}f}"


def render(
    text: str,
    pair: Pair | None,
    sweep: SweepMeasurement | None = None,
    curve: CurveMeasurement | None = None,
) -> str:
    """`text` with each placeholder replaced by the pair's (or the sweep's, or the
    curve's) number, or NOT_MEASURED."""

    def number(match: re.Match[str]) -> str:
        kind, metric, times = match.group(1), match.group(2), match.group(3)
        if kind == SWEEP_KIND:
            known = sweep is not None and metric in SWEEP_FIELDS
            return fmt(getattr(sweep, metric) if known else None)
        if kind == CURVE_KIND:
            value = curve.value(metric) if curve is not None else None
            if value is not None and metric.endswith("_workers"):
                return str(round(value))  # a count: "2", not "2.00"
            return fmt(value)
        if kind not in KINDS or pair is None:
            return NOT_MEASURED
        value = pair.value(kind, metric)
        if value is None and kind == "ratio" and pair.fixed.get(metric) == 0:
            return "unbounded (the fix brings it to 0)"
        # "{ratio.rps}x" reads "2.1x"; unmeasured, the "x" goes with the number.
        return fmt(value) + (times if value is not None else "")

    return _RENDERED.sub(number, text)


def sweep_markdown(sweep: SweepMeasurement) -> list[str]:
    """A rate sweep as a table, with the throughput at its SLO and its provenance."""
    name = sweep.slo_metric.removesuffix("_ms")
    of = f" of `{sweep.slo_route}`" if sweep.slo_route else ""
    lines = [
        f"| offered req/s | sent req/s | {name} ms{of} (from the intended time) | errors "
        f"| meets {name} <= {sweep.slo_p99_ms:g} ms |",
        "|---|---|---|---|---|",
    ]
    for p in sweep.points:
        value = p.get("value", p.get(sweep.slo_metric))  # sweeps before `value`: the p99
        lines.append(
            f"| {fmt(p.get('rate'))} | {fmt(p.get('rps'))} | {fmt(value)} "
            f"| {fmt(p.get('error_rate'))} | {'yes' if p.get('meets') else '**no**'} |"
        )
    best = sweep.throughput_at_slo
    lines += [
        "",
        f"Throughput at the SLO ({sweep.variant} variant, {sweep.step_s:g} s per rate): "
        + (f"{fmt(best)} requests/s." if best is not None else "not reached at any rate."),
    ]
    if sweep.points and sweep.points[-1].get("meets"):
        lines.append("Every rate tried met it: the sweep's highest rate is a lower bound.")
    return [*lines, "", sweep.provenance.line()]


def curve_markdown(curve: CurveMeasurement) -> list[str]:
    """A curve as one table per mix: each class's columns at each count on the axis; on a
    worker curve, the best count of each class marked."""
    lines: list[str] = []
    mixes = list(dict.fromkeys(str(p.get("mix")) for p in curve.points))
    classes = list(dict.fromkeys(str(p.get("worker_class")) for p in curve.points))
    workers = curve.axis == "workers"
    for mix in mixes:
        sample = next(p for p in curve.points if p.get("mix") == mix)
        counts = sorted({int(p.get(curve.axis) or 0) for p in curve.points
                         if p.get("mix") == mix})  # fmt: skip
        best = {cls: curve.best(mix, cls) if workers else None for cls in classes}
        rate = finite_number(sample.get("rate"))
        load = (f"open, {rate:g} req/s offered, p99 from each request's intended time" if rate
                else f"closed, {sample.get('users')} users")  # fmt: skip
        headers = ", ".join(h for _, h in curve.columns)
        title, how = (f"{mix} mix", f", {load}") if workers else (mix, "")
        lines += [
            f"**{title}** (workload `{sample.get('workload')}`{how}, "
            f"{curve.step_s:g} s per point; {headers}):",
            "",
            f"| {curve.axis} | " + " | ".join(f"{cls} {h}" for cls in classes
                                             for _, h in curve.columns) + " |",
            "|---|" + "---|" * (len(curve.columns) * len(classes)),
        ]  # fmt: skip
        for count in counts:
            cells = []
            for cls in classes:
                point = next((p for p in curve.series(mix, cls) if p.get(curve.axis) == count),
                             {})  # fmt: skip
                for i, (key, _) in enumerate(curve.columns):
                    mark = " (best)" if i == 0 and point and point is best[cls] else ""
                    cells.append(f"{fmt(finite_number(point.get(key)))}{mark}")
            lines.append(f"| {count} | " + " | ".join(cells) + " |")
        lines.append("")
    if workers:
        lines += [
            f"(best): the fewest workers within {CURVE_TOLERANCE:.0%} of that type's highest "
            "throughput on the mix.",
            "",
        ]
    return [*lines, curve.provenance.line()]
