"""`build_report`: summary.json, plots and report.md/html of one run dir."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .evidence import Evidence, load_evidence
from .plots import RUN_PLOTS
from .render import fmt, key_rows, meta_sections, plot_entries, symptom_verdict, write_pair
from .summary import SummaryFile, summarize_evidence

__all__ = ["RUN_PLOTS", "build_report", "human_size", "profile_context"]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def profile_context(ev: Evidence) -> dict[str, Any] | None:
    """What profile/profile.json describes, with links relative to the run dir."""
    prof = ev.profile
    if prof is None:
        return None
    files_raw = prof.get("files")
    files = []
    if isinstance(files_raw, Mapping):
        for name, rel in files_raw.items():
            rel_s = str(rel)
            files.append(
                {"name": str(name), "path": rel_s, "exists": (ev.run_dir / rel_s).exists()}
            )
    top = []
    top_raw = prof.get("top")
    if isinstance(top_raw, list):
        for row in top_raw:
            if isinstance(row, Mapping):
                value = row.get("value")
                unit = str(row.get("unit") or "")
                shown = fmt(value, percent=unit == "share") if unit == "share" else fmt(value)
                top.append(
                    {
                        "function": str(row.get("function", "")),
                        "location": str(row.get("location", "")),
                        "value": shown,
                        "unit": "%" if unit == "share" else unit,
                    }
                )
    command = prof.get("command")
    return {
        "tool": str(prof.get("tool") or "unknown"),
        "files": files,
        "top_title": str(prof.get("top_title") or "Top"),
        "top": top,
        "command": " ".join(map(str, command)) if isinstance(command, list) else None,
    }


def _make_plots(ev: Evidence, plots_dir: Path, notes: list[str]) -> list[Path]:
    made: list[Path] = []
    for name, make in RUN_PLOTS:
        stale = plots_dir / name
        if stale.is_file():
            stale.unlink()
        try:
            path = make(ev, plots_dir)
        except Exception as exc:  # a plot must not sink the report
            notes.append(f"plot {name} failed: {type(exc).__name__}: {exc}")
            continue
        if path is None:
            notes.append(f"plot {name} skipped: no data")
        else:
            made.append(path)
    return made


def _diagnosis(run_dir: Path, notes: list[str]) -> dict[str, Any] | None:
    """The engine's diagnosis of the run (reports/diagnosis/), written to
    diagnosis.json; None with a note when it fails (it must not sink the report)."""
    from .diagnosis import DiagnosisFile, diagnose

    try:
        found = diagnose(run_dir)
    except Exception as exc:
        notes.append(f"diagnosis failed: {type(exc).__name__}: {exc}")
        return None
    DiagnosisFile(run_dir).write(found)
    return found.as_dict()


def build_report(run_dir: Path) -> Path:
    """Write summary.json, plots/*.png, report.md and report.html into the run dir.

    Works on partial run dirs; returns the path of report.html. Raises
    UnusableRunDir (a ReportError) when meta.json is missing or in a format this
    code does not read: its message is one sentence for the user.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run dir {run_dir} does not exist")
    ev = load_evidence(run_dir)
    summary = summarize_evidence(ev)
    SummaryFile(run_dir).write(summary)
    plot_notes: list[str] = []
    plots = _make_plots(ev, run_dir / "plots", plot_notes)
    # Rendered from Prometheus by the lab when Prometheus ran (`lab dashboard
    # snapshot`); kept in the run dir, so a rebuilt report still has it.
    dashboard = run_dir / "plots" / "dashboard.png"
    if dashboard.is_file():
        plots.append(dashboard)
    diagnosis = _diagnosis(run_dir, plot_notes)
    verdict_class, verdict = symptom_verdict(summary.get("symptom"))
    meta = ev.meta
    files = []
    for rel in ev.files:
        try:
            size = human_size((run_dir / rel).stat().st_size)
        except OSError:
            size = "?"
        files.append({"path": rel, "size": size})
    context = {
        "title": f"{meta.get('scenario') or run_dir.name} / {meta.get('variant') or '?'}",
        "scenario_title": meta.get("title"),
        "status": summary.get("status") or "unknown",
        "summary": summary,
        "verdict": verdict,
        "verdict_class": verdict_class,
        "rows": key_rows(summary),
        "plots": plot_entries(plots, run_dir),
        "profile": profile_context(ev),
        "diagnosis": diagnosis,
        "sections": meta_sections(meta),
        "notes": list(summary.get("notes") or []),
        "plot_notes": plot_notes,
        "files": files,
        "history_cumulative": ev.history is not None and not ev.history_full,
    }
    _, html = write_pair(run_dir, "report", context)
    return html
