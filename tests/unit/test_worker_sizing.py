"""worker-sizing's parts that need no process: how each variant is started, and the curve."""

from __future__ import annotations

from pathlib import Path

from faults import worker_sizing
from faults.worker_sizing import SCENARIO, WorkerSizingParams, flask_era_workers
from lab.app_server import AppConfig, app_command
from lab.measurements import (
    CurveMeasurement,
    MeasurementFile,
    Provenance,
    curve_markdown,
    render,
)
from upstream.app import MODEL_LATENCY_MS


def test_the_faulty_variant_is_the_flask_era_config_and_the_fixed_one_a_worker_per_core() -> None:
    faulty = SCENARIO.deployment("faulty", WorkerSizingParams())
    fixed = SCENARIO.deployment("fixed", WorkerSizingParams())
    assert faulty is not None and fixed is not None
    assert (faulty.worker_class, faulty.threads) == ("gthread", 2)
    assert faulty.resolved_workers == flask_era_workers()
    assert fixed.worker_class == "uvicorn"
    assert fixed.resolved_workers == (__import__("os").cpu_count() or 1)
    pinned = SCENARIO.deployment("faulty", WorkerSizingParams(workers=3, threads=4))
    assert pinned is not None and (pinned.resolved_workers, pinned.threads) == (3, 4)
    assert flask_era_workers(2) == 5


def test_a_gthread_app_is_started_by_gunicorn_through_the_wsgi_adapter_even_alone() -> None:
    config = AppConfig(port=9, workers=1, worker_class="gthread", threads=2)
    command = app_command(config)
    assert config.server == "gunicorn"
    assert command[command.index("--worker-class") + 1] == "gthread"
    assert command[command.index("--threads") + 1] == "2"
    assert command[-1] == "target_app.wsgi:create_wsgi_app()"
    assert config.label == "gunicorn gthread x1 (2 threads)"
    uvicorn = AppConfig(port=9, workers=2)
    assert "--worker-class" not in app_command(uvicorn)
    assert app_command(uvicorn)[-1] == "target_app.main:create_app()"
    assert AppConfig(port=9).server == "uvicorn"


def _point(mix: str, cls: str, workers: int, rps: float, p99: float = 10.0) -> dict[str, object]:
    return {"mix": mix, "worker_class": cls, "workers": workers, "rps": rps, "p99_ms": p99,
            "workload": "cpu_mix" if mix == "cpu" else "blocking", "users": 32,
            "app_cpu_cores": 1.0}  # fmt: skip


def _curve() -> CurveMeasurement:
    points = (
        _point("cpu", "uvicorn", 1, 200.0), _point("cpu", "uvicorn", 2, 390.0),
        _point("cpu", "uvicorn", 3, 400.0), _point("cpu", "uvicorn", 4, 380.0, p99=90.0),
        _point("io", "gthread", 1, 40.0), _point("io", "gthread", 2, 80.0),
        _point("io", "uvicorn", 1, 500.0), _point("io", "uvicorn", 2, 510.0),
    )  # fmt: skip
    provenance = Provenance("bench (worker curve)", "here", "2026-12-04T00:00:00+00:00",
                            "box", 2, "abc")  # fmt: skip
    return CurveMeasurement("worker-sizing", 12.0, points, provenance)


def test_the_best_count_is_the_fewest_workers_near_the_top_not_the_noisy_maximum() -> None:
    curve = _curve()
    # 390 is within 5% of 400: a third worker on 2 cores is noise, not a gain.
    assert curve.value("cpu_uvicorn_best_workers") == 2
    assert curve.value("cpu_uvicorn_best_rps") == 390.0
    assert curve.value("cpu_uvicorn_4_p99_ms") == 90.0
    assert curve.value("io_uvicorn_1_rps") == 500.0
    assert curve.value("io_gthread_best_rps") == 80.0
    assert curve.value("io_gthread_7_rps") is None  # not measured
    assert curve.value("no such field") is None


def test_answers_cite_the_curve_and_the_file_keeps_it(tmp_path: Path) -> None:
    stored = MeasurementFile(tmp_path / "m.json")
    stored.curves["worker-sizing"] = _curve()
    stored.save()
    curve = MeasurementFile.load(tmp_path / "m.json").curves["worker-sizing"]
    assert curve.points == _curve().points
    text = render("{curve.cpu_uvicorn_best_workers} workers, {curve.io_gthread_9_rps}", None,
                  curve=curve)  # fmt: skip
    assert text == "2 workers, (not measured yet)"
    table = "\n".join(curve_markdown(curve))
    assert "| 2 | 390 (best) |" in table and "**io mix**" in table


def test_every_curve_placeholder_of_the_page_names_a_series_the_bench_measures() -> None:
    from lab.bench.worker_sizing import CLASSES, MIXES
    from lab.measurements import CURVE_KIND, placeholders

    for answer in SCENARIO.answers:
        for kind, name in placeholders(answer.answer):
            if kind == CURVE_KIND:
                mix, cls = name.split("_")[:2]
                assert mix in MIXES and cls in CLASSES, name
    # The threshold is one call to the model server the io mix waits on.
    assert worker_sizing.DEPENDENCY_MS == MODEL_LATENCY_MS
