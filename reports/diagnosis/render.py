"""A diagnosis for people: plain text for `lab diagnose`, markdown for the report."""

from __future__ import annotations

from .engine import Diagnosis

__all__ = ["diagnosis_markdown", "diagnosis_text"]


def diagnosis_text(d: Diagnosis) -> str:
    lines = [f"verdict: {d.verdict}" + (f" - cause: {d.top}" if d.verdict == "degraded" else "")]
    if not d.candidates:
        lines.append("no signature of the catalogue and no condition of the environment fired")
    for rank, c in enumerate(d.candidates, start=1):
        lines.append(f"{rank}. {c.cause} ({c.kind}, confidence {c.confidence:.2f})")
        lines += [f"     - {e}" for e in c.evidence]
        if c.confirm:
            lines.append(f"     confirm: {c.confirm}")
        lines.append(f"     fix: {c.fix}")
    lines += [f"note: {n}" for n in d.notes]
    return "\n".join(lines)


def diagnosis_markdown(d: Diagnosis) -> list[str]:
    """The report's Diagnosis section (a heading and its lines)."""
    out = ["## Diagnosis", ""]
    out.append(
        "Named from the run's evidence alone (the app's metrics, requests.csv, app.log, "
        "profiles), without the scenario, its variant or its parameters "
        "(`lab diagnose RUN`)."
    )
    out.append("")
    if d.verdict == "healthy":
        out.append(
            "**Verdict: healthy**: no measured value past the bound a healthy service keeps."
        )
    else:
        out.append(f"**Verdict: degraded**. Most likely cause: **{d.top}**.")
    out.append("")
    if d.candidates:
        out += [
            "| rank | cause | kind | confidence | evidence | confirm |",
            "|---|---|---|---|---|---|",
        ]
        for rank, c in enumerate(d.candidates, start=1):
            evidence = "<br>".join(e.replace("|", "\\|") for e in c.evidence)
            out.append(
                f"| {rank} | {c.cause} | {c.kind} | {c.confidence:.2f} | {evidence} | {c.confirm} |"
            )
        out.append("")
    out += [f"- {n}" for n in d.notes]
    if d.notes:
        out.append("")
    return out
