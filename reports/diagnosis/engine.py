"""`diagnose(run_dir)`: the root cause named from a run's evidence alone.

The run dir is blinded first (blind.py: only what production has), turned into
Signs (signs.py), and every scenario's signature (faults/_signs.py, declared in
its file in faults/) and every condition of the environment (environment.py) is
asked what it sees. The findings are ranked by score; the run is `degraded`
when the best reaches DEGRADED (a measured value past the bound a healthy
service keeps), else `healthy`. The result is written as diagnosis.json
(DiagnosisFile, format 1) and shown in the report and the comparison.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from faults._signs import DEGRADED, Finding, Signs

from .blind import blind_copy
from .environment import environment_findings
from .signs import build_signs

__all__ = [
    "FORMAT",
    "Candidate",
    "Diagnosis",
    "DiagnosisFile",
    "diagnose",
    "diagnose_signs",
]

FORMAT = 1
# Candidates shown: the best few, and none below this score (noise, not leads).
MAX_CANDIDATES = 5
MIN_SCORE = 0.25

Verdict = Literal["healthy", "degraded"]


@dataclass(frozen=True)
class Candidate:
    cause: str  # a catalogue slug, or a condition of the environment
    kind: Literal["scenario", "environment"]
    confidence: float
    evidence: tuple[str, ...]
    confirm: str
    fix: str  # where the fix is: the scenario's page command, or what to look at

    def as_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "kind": self.kind,
            "confidence": round(self.confidence, 3),
            "evidence": list(self.evidence),
            "confirm": self.confirm,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Diagnosis:
    verdict: Verdict
    candidates: tuple[Candidate, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def top(self) -> str:
        """The named cause, or "healthy"."""
        return self.candidates[0].cause if self.verdict == "degraded" else "healthy"

    def ranked(self) -> list[str]:
        """Causes in rank order, those at or above DEGRADED only ("healthy" if none)."""
        named = [c.cause for c in self.candidates if c.confidence >= DEGRADED]
        return named or ["healthy"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "verdict": self.verdict,
            "cause": self.top,
            "candidates": [c.as_dict() for c in self.candidates],
            "notes": list(self.notes),
        }


def _context(signs: Signs) -> tuple[str, ...]:
    """Evidence every code cause shares: the route that suffers most and, when the
    run was profiled, its hottest functions (what to open first)."""
    out: list[str] = []
    slowest = signs.slowest_route()
    if slowest is not None:
        name, route = slowest
        out.append(
            f"slowest route: {name} (p50 {route.p50_ms:.4g} ms over {route.requests} requests)"
        )
    for frame in signs.frames[:2]:
        out.append(
            f"hottest in the {signs.profile_tool or 'profile'}: {frame.function} "
            f"({frame.location}, {frame.share:.0%})"
        )
    return tuple(out)


def _scenario_candidate(finding: Finding, context: tuple[str, ...]) -> Candidate:
    confirm = finding.confirm
    if confirm.startswith("profile="):
        # The profile of a run of the scenario: where its time or memory goes.
        confirm = f"make fault={finding.cause} load {confirm}"
    return Candidate(
        cause=finding.cause,
        kind="scenario",
        confidence=finding.score,
        evidence=tuple(clue.line() for clue in finding.clues) + context,
        confirm=confirm,
        fix=f"lab scenarios {finding.cause} (the fixed variant, and why)",
    )


def _environment_candidate(finding: Finding) -> Candidate:
    return Candidate(
        cause=finding.cause,
        kind="environment",
        confidence=finding.score,
        evidence=tuple(clue.line() for clue in finding.clues),
        confirm=finding.confirm,
        fix="the environment, not the code: the link or the service named",
    )


def diagnose_signs(signs: Signs) -> Diagnosis:
    """Rank what every signature and environment condition finds in `signs`."""
    from faults._registry import all_scenarios

    candidates: list[Candidate] = []
    context = _context(signs)
    for scenario in all_scenarios():
        if scenario.signature is None:
            continue
        found = scenario.signature(signs)
        if found is not None and found.score >= MIN_SCORE:
            candidates.append(_scenario_candidate(found, context))
    candidates += [
        _environment_candidate(f) for f in environment_findings(signs) if f.score >= MIN_SCORE
    ]
    # Highest score first; equal scores in a fixed order, so the output is stable.
    candidates.sort(key=lambda c: (-round(c.confidence, 6), c.kind, c.cause))
    candidates = candidates[:MAX_CANDIDATES]
    verdict: Verdict = (
        "degraded" if candidates and candidates[0].confidence >= DEGRADED else "healthy"
    )
    notes: list[str] = []
    if not signs.numbers.get("requests"):
        notes.append(
            "no requests.csv: the clients' view is missing; the verdict rests on the app's metrics"
        )
    if signs.numbers.get("served") is None:
        notes.append("no app metrics (metrics.csv): most signatures cannot be read")
    return Diagnosis(verdict=verdict, candidates=tuple(candidates), notes=tuple(notes))


def diagnose(run_dir: Path) -> Diagnosis:
    """Diagnose a run dir from its blinded copy only."""
    with tempfile.TemporaryDirectory(prefix="lab-diagnose-") as tmp:
        blinded = blind_copy(Path(run_dir), Path(tmp) / "run")
        signs = build_signs(blinded)
    return diagnose_signs(signs)


class DiagnosisFile:
    """`diagnosis.json` in a run dir: the engine's verdict, written by the report."""

    NAME = "diagnosis.json"

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / self.NAME

    def write(self, diagnosis: Diagnosis) -> Path:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps(diagnosis.as_dict(), option=orjson.OPT_INDENT_2))
        tmp.replace(self.path)
        return self.path

    def read(self) -> dict[str, Any] | None:
        """The file's content when it is in this code's format; else None."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        return data
