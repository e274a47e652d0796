"""The diagnosis reads a blinded copy: nothing that names the scenario, its variant
or its parameters reaches it (reports/diagnosis/blind.py)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from reports.diagnosis.blind import blind_copy, mask

META = {
    "format": 1,
    "run_id": "20261208-010000-redis-timeout-faulty",
    "scenario": "redis-timeout",
    "title": "Redis without a timeout",
    "seeds": [9],
    "kind": "network",
    "variant": "faulty",
    "params": {"timeout_s": 0.2},
    "symptom": {"metric": "p50_ms", "op": ">", "threshold": 1000.0},
    "load": {"workload": "catalog", "shape": "constant", "users": 20, "spawn_rate": 20,
             "duration_s": 30, "rate": None, "load_processes": 1},
    "app": {"server": "uvicorn", "workers": 1, "host": "127.0.0.1", "port": 41234,
            "state_file": ".lab/state/20261208-010000-redis-timeout-faulty.json",
            "command": ["python", "-m", "uvicorn"], "worker_class": "uvicorn", "threads": 1},
    "toxics": [{"name": "redis latency"}],
    "status": "completed",
    "load_started_at": "2026-12-08T01:00:01+00:00",
    "load_ended_at": "2026-12-08T01:00:31+00:00",
    "machine": {"hostname": "vm", "cpus": 2, "memory_gb": 23.4},
    "git_commit": "abc",
}  # fmt: skip


def _run_dir(root: Path) -> Path:
    run = root / META["run_id"]
    run.mkdir()
    (run / "meta.json").write_text(json.dumps(META))
    (run / "metrics.csv").write_text(
        "ts,t,name,labels,value\n"
        "1.0,0.1,lab_fault_active,scenario=redis-timeout,1.0\n"
        "1.0,0.1,lab_locust_cpu_seconds_total,,3.0\n"
        "1.0,0.1,some_gauge,variant=faulty,1.0\n"
        "1.0,0.1,http_requests_in_flight,,4.0\n"
    )
    (run / "requests.csv").write_text("start,name,ms,bytes,ok\n1.5,GET /catalog/stats,12.0,10,1\n")
    records = [
        {"ts": 1.0, "level": "INFO", "logger": "target_app", "msg": "app started",
         "env": "development", "active": ["redis-timeout"]},
        {"ts": 2.0, "level": "WARNING", "logger": "faults.redis_timeout",
         "msg": "FaultyStatsCache gave up", "exc": 'File "faults/redis_timeout.py", line 3'},
    ]  # fmt: skip
    (run / "app.log").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    for name in ("locust_stats.csv", "audit.json", "rollout.json", "summary.json", "webhooks.csv"):
        (run / name).write_text("redis-timeout faulty")
    (run / "profile").mkdir()
    (run / "profile" / "profile.json").write_text(
        json.dumps({"tool": "py-spy", "files": {"flamegraph": "x.svg"},
                    "top": [{"function": "FixedStatsCache.get",
                             "location": "faults/redis_timeout.py:40", "value": 0.5,
                             "unit": "share"}]})
    )  # fmt: skip
    return run


def test_the_blinded_copy_holds_only_what_production_has(tmp_path: Path) -> None:
    blinded = blind_copy(_run_dir(tmp_path), tmp_path / "blinded")
    files = sorted(p.relative_to(blinded).as_posix() for p in blinded.rglob("*") if p.is_file())
    assert files == ["app.log", "meta.json", "metrics.csv", "profile/profile.json", "requests.csv"]
    meta = json.loads((blinded / "meta.json").read_text())
    for key in ("scenario", "variant", "params", "toxics", "symptom", "title", "seeds", "run_id",
                "kind", "git_commit"):  # fmt: skip
        assert key not in meta, key
    assert "workload" not in meta["load"] and meta["load"]["users"] == 20
    assert set(meta["app"]) == {"server", "workers", "host", "worker_class", "threads"}
    metrics = (blinded / "metrics.csv").read_text().splitlines()
    assert metrics == ["ts,t,name,labels,value", "1.0,0.1,http_requests_in_flight,,4.0"]
    text = (blinded / "app.log").read_text() + (blinded / "profile" / "profile.json").read_text()
    for word in ("redis-timeout", "redis_timeout", "Faulty", "Fixed", "active", "development"):
        assert word not in text, word
    first, second = (orjson.loads(line) for line in (blinded / "app.log").read_bytes().splitlines())
    assert first == {"ts": 1.0, "level": "INFO", "logger": "target_app", "msg": "app started"}
    assert second["logger"] == "target_app"


def test_mask_names_no_scenario_and_no_variant() -> None:
    assert mask("faults/memory_leak.py in LeakyCache") == "faults/•.py in LeakyCache"
    assert mask("the FIXED n-plus-one feed") == "the • • feed"
    assert mask("GET /orders/feed") == "GET /orders/feed"
