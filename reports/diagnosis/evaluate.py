"""How often the diagnosis is right: AC@1 and AC@3 over a corpus of run dirs.

Each run dir is diagnosed blind (engine.diagnose), then scored against what its
meta.json says ran, which only this module reads:
- a faulty run of a scenario: the scenario's slug;
- a fixed run of a network scenario: the condition of the environment it applies
  (its `environment`), since the fixed code copes with it and the condition
  remains;
- any other fixed run, and a run with no scenario: "healthy".

AC@k is the share of runs whose expected answer is among the first k causes the
engine names (only causes at or above DEGRADED count; "healthy" when none). The
95% intervals are percentile bootstraps over the runs (2,000 resamples, seeded).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .engine import diagnose

__all__ = ["FORMAT", "Scored", "evaluate", "expected_answer", "run_dirs", "write_eval"]

FORMAT = 1
HEALTHY = "healthy"


@dataclass(frozen=True)
class Scored:
    run: str
    scenario: str | None
    variant: str | None
    expected: str
    ranked: tuple[str, ...]

    @property
    def at1(self) -> bool:
        return self.ranked[0] == self.expected

    @property
    def at3(self) -> bool:
        return self.expected in self.ranked[:3]


def expected_answer(meta: dict[str, Any]) -> str:
    """What a right diagnosis of this run says (see the module's docstring)."""
    from faults._registry import all_scenarios

    slug, variant = meta.get("scenario"), meta.get("variant")
    if not slug:
        return HEALTHY
    if variant == "faulty":
        return str(slug)
    catalogue = {s.slug: s for s in all_scenarios()}
    scenario = catalogue.get(str(slug))
    return scenario.environment if scenario is not None and scenario.environment else HEALTHY


def run_dirs(roots: Iterable[Path]) -> list[Path]:
    """Every completed run dir under the roots (a run dir itself counts)."""
    found: list[Path] = []
    for root in roots:
        for meta in sorted(Path(root).rglob("meta.json")):
            try:
                data = orjson.loads(meta.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if isinstance(data, dict) and data.get("status") == "completed":
                found.append(meta.parent)
    return found


def _interval(hits: Sequence[bool], rng: np.random.Generator) -> tuple[float, float]:
    values = np.asarray(hits, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    boots = rng.choice(values, size=(2000, values.size), replace=True).mean(axis=1)
    return (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))


def evaluate(dirs: Sequence[Path], *, seed: int = 0) -> dict[str, Any]:
    """Diagnose every run dir and score it; the eval's table as a dict."""
    scored: list[Scored] = []
    for run in dirs:
        meta = orjson.loads((run / "meta.json").read_bytes())
        ranked = tuple(diagnose(run).ranked())
        scored.append(
            Scored(
                run=str(run),
                scenario=meta.get("scenario"),
                variant=meta.get("variant"),
                expected=expected_answer(meta),
                ranked=ranked,
            )
        )
    rng = np.random.default_rng(seed)
    by_expected: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        by_expected[s.expected].append(s)
    rows = []
    for answer in sorted(by_expected):
        runs = by_expected[answer]
        hits1 = [s.at1 for s in runs]
        rows.append(
            {
                "expected": answer,
                "runs": len(runs),
                "ac1": float(np.mean(hits1)),
                "ac1_ci": _interval(hits1, rng),
                "ac3": float(np.mean([s.at3 for s in runs])),
                "named_instead": dict(Counter(s.ranked[0] for s in runs if not s.at1)),
            }
        )
    hits1 = [s.at1 for s in scored]
    hits3 = [s.at3 for s in scored]
    healthy = [s.ranked[0] == HEALTHY for s in scored if s.expected == HEALTHY]
    confusions = Counter((s.expected, s.ranked[0]) for s in scored if not s.at1)
    return {
        "format": FORMAT,
        "runs": len(scored),
        "overall": {
            "ac1": float(np.mean(hits1)) if hits1 else None,
            "ac1_ci": _interval(hits1, rng),
            "ac3": float(np.mean(hits3)) if hits3 else None,
            "ac3_ci": _interval(hits3, rng),
            "healthy_called_healthy": float(np.mean(healthy)) if healthy else None,
            "healthy_runs": len(healthy),
        },
        "by_answer": rows,
        "confusions": [
            {"expected": e, "named": n, "runs": c} for (e, n), c in confusions.most_common()
        ],
        "scored": [
            {
                "run": s.run,
                "scenario": s.scenario,
                "variant": s.variant,
                "expected": s.expected,
                "ranked": list(s.ranked),
            }
            for s in scored
        ],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def eval_markdown(result: dict[str, Any]) -> str:
    overall = result["overall"]
    lines = [
        "# Diagnosis eval",
        "",
        f"{result['runs']} run dirs, each diagnosed blind. "
        f"AC@1 {_pct(overall['ac1'])} (95% CI {_pct(overall['ac1_ci'][0])}-"
        f"{_pct(overall['ac1_ci'][1])}), AC@3 {_pct(overall['ac3'])}; healthy runs called "
        f"healthy: {_pct(overall['healthy_called_healthy'])} of {overall['healthy_runs']}.",
        "",
        "| expected answer | runs | AC@1 | 95% CI | AC@3 | named instead |",
        "|---|---:|---:|---|---:|---|",
    ]
    for row in result["by_answer"]:
        instead = ", ".join(f"{k} ({v})" for k, v in row["named_instead"].items()) or "-"
        low, high = row["ac1_ci"]
        lines.append(
            f"| {row['expected']} | {row['runs']} | {_pct(row['ac1'])} | "
            f"{_pct(low)}-{_pct(high)} | {_pct(row['ac3'])} | {instead} |"
        )
    return "\n".join(lines) + "\n"


def write_eval(result: dict[str, Any], out_dir: Path) -> Path:
    """eval.json and eval.md into out_dir; returns eval.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    md = out_dir / "eval.md"
    md.write_text(eval_markdown(result))
    return md
