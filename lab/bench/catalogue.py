"""Every scenario, faulty then fixed back to back, under its own default load.

The main metric of a scenario is its symptom's metric: the number its contract
test proves. The ratio is faulty / fixed; for a metric where smaller means
sicker (a symptom with `<`), fixed / faulty, so that a ratio above 1 always
reads "how much the fix gained". Scenarios whose services are not running are
listed as skipped, with the command that starts them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import faults
from lab import measurements
from lab.runner import RunOptions, RunResult, available_services
from lab.runner import run as run_variant

__all__ = ["TARGETS", "CatalogueRow", "check_targets", "environ", "markdown", "record", "run"]


@dataclass
class CatalogueRow:
    slug: str
    metric: str
    op: str
    faulty: float | None = None
    fixed: float | None = None
    faulty_present: bool | None = None
    fixed_present: bool | None = None
    faulty_p95_ms: float | None = None
    fixed_p95_ms: float | None = None
    faulty_rps: float | None = None
    fixed_rps: float | None = None
    faulty_run: str | None = None
    fixed_run: str | None = None
    skipped: str | None = None
    # row-by-row-insert only: one real 50,000-row import by the fixed variant, its
    # time at the client (p50 of the run's imports), in seconds; see import_50k().
    import_50k_s: float | None = None
    import_50k_run: str | None = None

    @property
    def ratio(self) -> float | None:
        """How much the fix gained on the main metric (> 1: better)."""
        worse, better = (self.fixed, self.faulty) if self.op in ("<", "<=") else (
            self.faulty, self.fixed)  # fmt: skip
        if worse is None or better is None or better == 0:
            return None
        return worse / better

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio}


def _row(scenario: faults.Scenario[Any, Any], faulty: RunResult, fixed: RunResult) -> CatalogueRow:
    row = CatalogueRow(scenario.slug, scenario.symptom.metric, scenario.symptom.op)
    for name, result in (("faulty", faulty), ("fixed", fixed)):
        symptom = result.summary.get("symptom") or {}
        setattr(row, name, symptom.get("value"))
        setattr(row, f"{name}_present", symptom.get("present"))
        setattr(row, f"{name}_p95_ms", result.summary.get("p95_ms"))
        setattr(row, f"{name}_rps", result.summary.get("rps"))
        setattr(row, f"{name}_run", str(result.run_dir))
    return row


def run(
    slugs: Sequence[str] | None,
    duration_s: float | None,
    out: Path,
    progress: Callable[[str, int], None] = lambda _description, _advance: None,
    committed: Path | None = measurements.DEFAULT_FILE,
) -> tuple[list[CatalogueRow], bool]:
    """(rows, interrupted). Each run's own output goes to its run dir, not the terminal;
    `progress(description, runs_done)` is told as runs start and end. The pairs
    measured (also those before an interruption) are recorded in `committed`."""
    scenarios = [faults.get(s) for s in slugs] if slugs else faults.all_scenarios()
    services = available_services()
    quiet = Console(file=io.StringIO())
    rows: list[CatalogueRow] = []
    try:
        _run_all(scenarios, services, duration_s, out, progress, quiet, rows)
    except (_Interrupted, KeyboardInterrupt):
        return rows, True
    finally:
        if committed is not None:
            record(rows, out.parent / "bench.json", committed)
    return rows, False


def record(rows: Sequence[CatalogueRow], bench: Path, committed: Path) -> list[str]:
    """Each measured row's pair into the committed measurement file, which the scenario
    pages fall back to; only the numbers each page cites. The slugs recorded."""
    stored = measurements.MeasurementFile.load(committed)
    recorded = []
    for row in rows:
        if row.skipped or not row.faulty_run or not row.fixed_run:
            continue
        scenario = faults.get(row.slug)
        cited = measurements.cited_metrics(a.answer for a in scenario.answers)
        pair = measurements.pair_from_run_dirs(
            row.slug, Path(row.faulty_run), Path(row.fixed_run), "bench", str(bench),
            {*cited, scenario.symptom.metric},
        )  # fmt: skip
        if pair is not None:
            stored.pairs[row.slug] = pair
            recorded.append(row.slug)
    if recorded:
        stored.save()
    return recorded


class _Interrupted(Exception):
    pass


def _run_all(
    scenarios: Sequence[faults.Scenario[Any, Any]],
    services: set[str],
    duration_s: float | None,
    out: Path,
    progress: Callable[[str, int], None],
    quiet: Console,
    rows: list[CatalogueRow],
) -> None:
    for scenario in scenarios:
        missing = [need for need in scenario.requires if need not in services]
        if missing:
            rows.append(CatalogueRow(
                scenario.slug, scenario.symptom.metric, scenario.symptom.op,
                skipped=f"needs {', '.join(missing)}: `make up` first",
            ))  # fmt: skip
            progress(f"{scenario.slug}: skipped", 2)
            continue
        results: list[RunResult] = []
        for fixed in (False, True):
            progress(f"{scenario.slug} ({'fixed' if fixed else 'faulty'})", 0)
            options = RunOptions(scenario.slug, fixed=fixed, duration_s=duration_s, out=out)
            results.append(run_variant(options, quiet))
            progress(f"{scenario.slug} ({'fixed' if fixed else 'faulty'})", 1)
            if results[-1].status == "interrupted":
                raise _Interrupted
        if any(r.status != "completed" for r in results):
            failed = next(r for r in results if r.status != "completed")
            rows.append(CatalogueRow(
                scenario.slug, scenario.symptom.metric, scenario.symptom.op,
                skipped=f"run {failed.status}: {failed.error} ({failed.run_dir})",
            ))  # fmt: skip
            continue
        row = _row(scenario, results[0], results[1])
        if scenario.slug == IMPORT_SLUG:
            progress(f"{scenario.slug} (fixed, 50,000-row batches)", 0)
            row.import_50k_s, row.import_50k_run = import_50k(out, quiet)
        rows.append(row)


IMPORT_SLUG = "row-by-row-insert"
IMPORT_ROWS = 50_000


@contextmanager
def environ(name: str, value: str) -> Iterator[None]:
    """A workload's knob (its environment variable, read by the Locust processes the
    run starts) set for the `with` block, and put back after."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def import_50k(out: Path, console: Console) -> tuple[float | None, str | None]:
    """The target "50,000 rows in about a second", measured, not extrapolated from the
    catalogue run's 5,000-row batches: the fixed variant imports whole 50,000-row batches
    (the imports workload's LAB_IMPORT_BATCH), one client, and the p50 of those imports
    at the client is the number. (seconds, run dir), or (None, run dir) if none ended."""
    with environ("LAB_IMPORT_BATCH", str(IMPORT_ROWS)):
        result = run_variant(
            RunOptions(IMPORT_SLUG, fixed=True, users=1, duration_s=15.0, out=out), console
        )
    if result.status == "interrupted":
        raise _Interrupted
    route = (result.summary.get("routes") or {}).get("POST /imports/products") or {}
    p50 = route.get("p50_ms")
    return (p50 / 1000 if isinstance(p50, int | float) else None), str(result.run_dir)


def _ratio(worse: float | None, better: float | None) -> float | None:
    return worse / better if worse and better else None


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


# The performance targets for fixed variants: (slug, what, check of a row).
TARGETS: list[tuple[str, str, Callable[[CatalogueRow], tuple[float | None, bool | None]]]] = [
    (
        "offset-pagination",
        "keyset deep page within 2x of page 1",
        lambda r: (r.fixed, _at_most(r.fixed, 2.0)),
    ),
    (
        "row-by-row-insert",
        "50,000 rows inserted in about a second (s)",
        lambda r: (r.import_50k_s, _at_most(r.import_50k_s, 1.5)),
    ),
    (
        "heavy-json",
        "orjson/streamed export at least 3x faster (p95 ratio)",
        lambda r: (
            _ratio(r.faulty_p95_ms, r.fixed_p95_ms),
            _at_least(_ratio(r.faulty_p95_ms, r.fixed_p95_ms), 3.0),
        ),
    ),
]


def check_targets(rows: Sequence[CatalogueRow]) -> list[dict[str, Any]]:
    by_slug = {r.slug: r for r in rows if not r.skipped}
    checks = []
    for slug, what, check in TARGETS:
        row = by_slug.get(slug)
        value, ok = check(row) if row else (None, None)
        checks.append({"scenario": slug, "target": what, "value": value, "met": ok})
    return checks


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _present(flag: bool | None) -> str:
    return {True: "yes", False: "no", None: "?"}[flag]


def markdown(rows: Sequence[CatalogueRow], checks: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| scenario | main metric | faulty | fixed | gain | symptom faulty / fixed "
        "| p95 ms faulty -> fixed | req/s faulty -> fixed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.slug} | `{r.metric}` | skipped: {r.skipped} | | | | | |")
            continue
        lines.append(
            f"| {r.slug} | `{r.metric}` | {_fmt(r.faulty)} | {_fmt(r.fixed)} "
            f"| {'x' + _fmt(r.ratio) if r.ratio else 'n/a'} "
            f"| {_present(r.faulty_present)} / {_present(r.fixed_present)} "
            f"| {_fmt(r.faulty_p95_ms)} -> {_fmt(r.fixed_p95_ms)} "
            f"| {_fmt(r.faulty_rps)} -> {_fmt(r.fixed_rps)} |"
        )
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for c in checks:
        met = {True: "yes", False: "**no**", None: "not measured"}[c["met"]]
        lines.append(f"| {c['scenario']}: {c['target']} | {_fmt(c['value'])} | {met} |")
    return lines
