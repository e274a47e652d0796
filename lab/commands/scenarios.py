"""`lab scenarios [SLUG] [--json]`: the catalogue, or one scenario's page."""

from __future__ import annotations

import difflib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

import faults
from lab import measurements
from lab.errors import LabError
from lab.measurements import CurveMeasurement, Pair, StepsMeasurement, SweepMeasurement, fmt
from lab.seed_questions import SEEDS

__all__ = [
    "Benches", "answers_markdown", "catalogue", "measured_markdown", "page_markdown", "run",
    "variant_diff", "write_handbook",
]  # fmt: skip


def catalogue() -> list[dict[str, Any]]:
    return [
        {"slug": s.slug, "title": s.title, "seeds": list(s.seeds), "kind": s.kind,
         "requires": list(s.requires)}
        for s in faults.all_scenarios()
    ]  # fmt: skip


def _scenario(slug: str) -> faults.Scenario[Any, Any]:
    try:
        return faults.get(slug)
    except faults.UnknownScenario as exc:
        raise LabError(str(exc)) from None


def _measurement(s: faults.Scenario[Any, Any], runs: Path, committed: Path) -> Pair | None:
    cited = measurements.cited_metrics(a.answer for a in s.answers)
    return measurements.latest(s.slug, {*cited, s.symptom.metric}, runs, committed)


def page_markdown(
    slug: str, runs: Path = Path("runs"), committed: Path = measurements.DEFAULT_FILE
) -> str:
    """The scenario's page, its numbers from the latest measurement under `runs`
    or in the committed measurement file, whichever is newer."""
    s = _scenario(slug)
    pair = _measurement(s, runs, committed)
    return _page(s, pair, _benches(s.slug, runs, committed))


@dataclass(frozen=True)
class Benches:
    """A scenario's own bench parts, each None when it has none (or none measured)."""

    steps: StepsMeasurement | None = None  # heavy-json's step by step
    sweep: SweepMeasurement | None = None  # performance-testing's rate sweep
    curve: CurveMeasurement | None = None  # worker-sizing's workers, sse-logs' clients

    def as_dict(self) -> dict[str, Any]:
        return {name: part.as_dict() if part else None
                for name, part in (("steps", self.steps), ("sweep", self.sweep),
                                   ("curve", self.curve))}  # fmt: skip


def _benches(slug: str, runs: Path, committed: Path) -> Benches:
    """The scenario's own bench parts, each the newest of `runs` and `committed`."""
    return Benches(measurements.latest_steps(slug, runs, committed),
                   measurements.latest_sweep(slug, runs, committed),
                   measurements.latest_curve(slug, runs, committed))  # fmt: skip


def _page(s: faults.Scenario[Any, Any], pair: Pair | None, benches: Benches) -> str:
    sym = s.symptom
    params = (
        "\n".join(
            f"- `{name}`: {spec.get('description', '')} (default `{spec.get('default')}`)"
            for name, spec in s.params.model_json_schema().get("properties", {}).items()
        )
        or "- none"
    )
    needs = ", ".join(s.requires) or "nothing"
    # A deployment's or release's variants are how the app starts or is deployed:
    # nothing to switch at run time.
    toggle = f", or `PUT /_lab/faults/{s.slug}`" if s.toggled else ""
    return f"""# {s.slug}: {s.title}

Seed questions: {_seed_titles(s.seeds)} - kind: {s.kind} - needs: {needs}

{s.summary}

{measured_markdown(s, pair, benches)}
{answers_markdown(s, pair, benches)}
## Reproduce

```
make fault={s.slug} load            # faulty variant under load, report at the end
make fault={s.slug} fixed=1 load    # the fix, same load
make fault={s.slug} compare         # both, and a before/after report
```

Symptom: `{_symptom_metric(sym)} {sym.op} {sym.threshold:g}` - {sym.description}.

Parameters (`lab run {s.slug} --param name=value`{toggle}):
{params}

## The fix, as a diff of the two variants

```diff
{variant_diff(s)}
```

## Diagnosis

{s.diagnosis}
"""


def _symptom_metric(sym: faults.Symptom) -> str:
    """The symptom's metric as the predicate reads it: of a route, or a route's over another's."""
    if sym.route and sym.baseline_route:
        return f"{sym.metric} of {sym.route} / {sym.metric} of {sym.baseline_route}"
    return f"{sym.metric} of {sym.route}" if sym.route else sym.metric


def _seed_titles(seeds: tuple[int, ...]) -> str:
    return ", ".join(f"{n} ({SEEDS[n].title})" if n in SEEDS else str(n) for n in seeds)


def measured_markdown(
    s: faults.Scenario[Any, Any], pair: Pair | None, benches: Benches | None = None
) -> str:
    """The "Measured" block: the symptom faulty vs fixed vs its threshold, the client
    p95 and throughput, and the line saying where, when and on what they were measured."""
    sym = s.symptom
    lines = ["## Measured", ""]
    if pair is None:
        lines += [
            "Not measured yet: no run of this scenario under `runs/` "
            "and none in docs/measurements.json. `make bench` (or "
            f"`make fault={s.slug} compare`) measures it; `make handbook` then shows it here.",
            "",
        ]
    else:
        where = f" (route `{sym.route}`)" if sym.route else ""
        if sym.baseline_route:  # a ratio: the route's metric over the baseline route's
            where += f" / the same of `{sym.baseline_route}`"
        verdict = {True: "symptom present", False: "symptom absent", None: "not judged"}
        # The predicate as the runs evaluated it (meta.json's), which a later change
        # of the scenario's threshold does not rewrite.
        measured = {**sym.as_dict(), **{k: v for k, v in pair.symptom.items() if v is not None}}
        lines += [
            "| | faulty | fixed | symptom when |",
            "|---|---|---|---|",
            f"| symptom: `{measured['metric']}`{where} | {fmt(pair.symptom.get('faulty_value'))} "
            f"({verdict[pair.symptom.get('faulty_present')]}) "
            f"| {fmt(pair.symptom.get('fixed_value'))} "
            f"({verdict[pair.symptom.get('fixed_present')]}) "
            f"| `{measured['op']} {float(measured['threshold']):g}` |",
            f"| client p95 (ms) | {fmt(pair.faulty.get('p95_ms'))} "
            f"| {fmt(pair.fixed.get('p95_ms'))} | |",
            f"| throughput (req/s) | {fmt(pair.faulty.get('rps'))} "
            f"| {fmt(pair.fixed.get('rps'))} | |",
            "",
            ("Measured as a pair: both variants back to back, under the same load."
             if pair.together else "Two runs found on their own, not measured as a pair."),
            "",
            pair.provenance.line(),
            "",
        ]  # fmt: skip
    benches = benches or Benches()
    if benches.steps is not None:
        lines += [*_steps_markdown(benches.steps), ""]
    if benches.sweep is not None:
        lines += ["### Throughput at the SLO: the rate stepped", "",
                  *measurements.sweep_markdown(benches.sweep), ""]  # fmt: skip
    if benches.curve is not None:
        title, alt = (("The worker curve: count x type x mix", "throughput and p99 against workers")
                      if benches.curve.axis == "workers" else
                      (f"The {benches.curve.axis} curve: what each count costs the app",
                       f"the app's memory and CPU against the {benches.curve.axis}"))  # fmt: skip
        lines += [f"### {title}", "",
                  # docs/<slug>.png, drawn by the bench; the handbook's pages are in
                  # docs/scenarios/, next to it.
                  f"![{alt}](../{s.slug}.png)", "",
                  *measurements.curve_markdown(benches.curve), ""]  # fmt: skip
    return "\n".join(lines)


def _steps_markdown(steps: StepsMeasurement) -> list[str]:
    """A step-by-step bench (heavy-json's): one change per row, step 1 the baseline."""
    rows = [dict(r) for r in steps.steps]
    if not rows:
        return []
    base = rows[0].get("last_byte_s")
    lines = [
        f"### Step by step ({steps.rows:,} rows, each step in a fresh process)",
        "",
        "| step | last byte (s) | first byte (s) | CPU (s) | peak RSS growth (MB) "
        "| on the wire (MB) | faster than step 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        last = r.get("last_byte_s")
        gain = fmt(base / last) if base and last else measurements.NOT_MEASURED
        wire = r.get("wire_bytes")
        lines.append(
            f"| `{r.get('step')}`: {r.get('label', '')} | {fmt(last)} "
            f"| {fmt(r.get('first_byte_s'))} | {fmt(r.get('cpu_s'))} "
            f"| {fmt(r.get('peak_rss_growth_mb'))} "
            f"| {fmt(wire / 2**20 if wire is not None else None)} | {gain}x |"
        )
    return [*lines, "", steps.provenance.line()]


def answers_markdown(
    s: faults.Scenario[Any, Any], pair: Pair | None, benches: Benches | None = None
) -> str:
    """The seed questions and their follow-ups, answered; numbers from `pair` (and the
    scenario's own bench parts)."""
    benches = benches or Benches()
    if not s.answers:
        return ""
    lines = ["## The questions, answered", ""]
    for answer in s.answers:
        text = measurements.render(answer.answer, pair, benches.sweep, benches.curve)
        lines += [f"### {answer.question}", "", text, ""]
    return "\n".join(lines)


def variant_diff(scenario: faults.Scenario[Any, Any]) -> str:
    """The faulty implementation against the fixed one, as the scenario module has them."""
    try:
        faulty = inspect.getsource(scenario.faulty).splitlines()
        fixed = inspect.getsource(scenario.fixed).splitlines()
    except (OSError, TypeError):
        return "(source not available)"
    diff = difflib.unified_diff(
        faulty, fixed, f"faulty: {scenario.faulty.__name__}", f"fixed: {scenario.fixed.__name__}",
        lineterm="", n=2,
    )  # fmt: skip
    return "\n".join(diff)


def write_handbook(
    out: Path, runs: Path = Path("runs"), committed: Path = measurements.DEFAULT_FILE
) -> list[Path]:
    """Every scenario's page as docs/scenarios/<slug>.md, and an index saying which
    were measured, when and by what."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    index = [
        "# Scenario handbook",
        "",
        "| slug | seeds | kind | needs | title | measured |",
        "|---|---|---|---|---|---|",
    ]
    for s in faults.all_scenarios():
        pair = _measurement(s, runs, committed)
        path = out / f"{s.slug}.md"
        path.write_text(_page(s, pair, _benches(s.slug, runs, committed)))
        written.append(path)
        when = (f"{pair.provenance.measured_at[:10]} ({pair.provenance.source})" if pair
                else measurements.NOT_MEASURED)  # fmt: skip
        index.append(
            f"| [{s.slug}]({s.slug}.md) | {', '.join(map(str, s.seeds))} | {s.kind} "
            f"| {', '.join(s.requires) or '-'} | {s.title} | {when} |"
        )
    (out / "README.md").write_text("\n".join(index) + "\n")
    return [out / "README.md", *written]


def run(slug: str | None = None, as_json: bool = False, console: Console | None = None) -> str:
    console = console or Console()
    if slug:
        if as_json:
            scenario = _scenario(slug)
            pair = _measurement(scenario, Path("runs"), measurements.DEFAULT_FILE)
            benches = _benches(slug, Path("runs"), measurements.DEFAULT_FILE)
            card = {
                **scenario.describe(),
                "measurement": pair.as_dict() if pair else None,
                **benches.as_dict(),
            }
            text = json.dumps(card, indent=2)
            print(text)
        else:
            text = page_markdown(slug)
            console.print(Markdown(text))
        return text
    data = catalogue()
    if as_json:
        text = json.dumps(data, indent=2)
        print(text)
        return text
    table = Table(title="Lab scenarios")
    for column in ("slug", "kind", "seeds", "needs", "title"):
        table.add_column(column)
    for item in data:
        table.add_row(item["slug"], item["kind"], ", ".join(map(str, item["seeds"])),
                      ", ".join(item["requires"]) or "-", item["title"])  # fmt: skip
    console.print(table)
    covered = sorted({n for item in data for n in item["seeds"]})
    console.print(f"{len(data)} scenarios covering {len(covered)}/50 seed questions")
    return ""
