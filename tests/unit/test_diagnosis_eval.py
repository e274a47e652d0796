"""Scoring the diagnosis against what ran (reports/diagnosis/evaluate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app
from reports.diagnosis.evaluate import evaluate, expected_answer, run_dirs, write_eval


def test_the_expected_answer_is_the_slug_the_condition_or_healthy() -> None:
    assert expected_answer({"scenario": "n-plus-one", "variant": "faulty"}) == "n-plus-one"
    assert expected_answer({"scenario": "n-plus-one", "variant": "fixed"}) == "healthy"
    # The fixed code copes with the slow link; the link is still slow.
    assert expected_answer({"scenario": "db-latency", "variant": "fixed"}) == (
        "latency on the database link"
    )
    assert expected_answer({}) == "healthy"


def _run(root: Path, name: str, variant: str, status: str = "completed") -> Path:
    run = root / name
    run.mkdir(parents=True)
    meta = {"format": 1, "scenario": "memory-leak", "variant": variant, "status": status,
            "load_started_at": 1790000000.0, "load_ended_at": 1790000010.0}  # fmt: skip
    (run / "meta.json").write_text(json.dumps(meta))
    rows = "".join(f"{1790000000 + i / 10:.3f},GET /products/{{id}},5.0,100,1\n" for i in range(90))
    (run / "requests.csv").write_text("start,name,ms,bytes,ok\n" + rows)
    return run


def test_a_quiet_run_scores_healthy_and_an_unfinished_one_is_left_out(tmp_path: Path) -> None:
    _run(tmp_path, "a", "fixed")
    _run(tmp_path, "b", "faulty")
    _run(tmp_path, "c", "faulty", status="interrupted")
    dirs = run_dirs([tmp_path])
    assert [d.name for d in dirs] == ["a", "b"]
    result = evaluate(dirs)
    assert result["runs"] == 2
    # Nothing in these runs shows a leak: the fixed one is right, the faulty one not.
    assert result["overall"]["ac1"] == pytest.approx(0.5)
    assert result["overall"]["healthy_called_healthy"] == 1.0
    leak = next(r for r in result["by_answer"] if r["expected"] == "memory-leak")
    assert leak["named_instead"] == {"healthy": 1}
    table = write_eval(result, tmp_path / "eval").read_text()
    assert "| memory-leak | 1 | 0.00 |" in table and "| healthy | 1 | 1.00 |" in table


def test_the_cli_says_what_to_pass(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["diagnose"], standalone_mode=False)
    assert "pass a run dir" in str(done.exception)
    done = runner.invoke(app, ["diagnose", "--eval", str(tmp_path / "none")], standalone_mode=False)
    assert "no such folder" in str(done.exception)
    done = runner.invoke(app, ["diagnose", str(tmp_path)], standalone_mode=False)
    assert "not a run dir" in str(done.exception)


def test_the_comparison_says_whether_the_diagnosed_cause_went_away(tmp_path: Path) -> None:
    from reports.compare import diagnosis_change

    before, after = _run(tmp_path, "before", "faulty"), _run(tmp_path, "after", "fixed")
    change = diagnosis_change(before, after)
    # Two quiet runs: nothing named before, so nothing to remove.
    assert change["removed"] is None
    assert change["before"]["verdict"] == "healthy" and change["after"]["verdict"] == "healthy"
    assert change["sentence"].startswith("The before run was diagnosed healthy")


def test_the_corpus_plan_is_seeded_varied_and_valid() -> None:
    import faults
    from lab.corpus import DIAGNOSABLE_KINDS, plan

    runs = plan(seed=7, per_variant=2)
    assert runs == plan(seed=7, per_variant=2)
    assert runs != plan(seed=8, per_variant=2)
    catalogue = {s.slug: s for s in faults.all_scenarios()}
    diagnosable = {s for s, sc in catalogue.items() if sc.kind in DIAGNOSABLE_KINDS}
    for slug in diagnosable:
        mine = [r for r in runs if r.slug == slug and not r.label]
        assert sorted(r.fixed for r in mine) == [False, False, True, True], slug
        for r in mine:
            faults.validate_params(catalogue[slug], r.params)
    assert not {r.slug for r in runs if not r.label} - diagnosable
    assert len({(r.users, r.rate, r.duration_s, r.shape) for r in runs}) > len(runs) // 2
    assert any(r.params for r in runs) and any(r.shape == "step" for r in runs)
    assert [r for r in runs if r.label == "healthy"]
    assert all(15 <= r.duration_s <= 25 for r in runs)
    # About an hour on 2 cores: each run's load plus its start and stop.
    assert sum(r.duration_s + 12 for r in runs) < 75 * 60
