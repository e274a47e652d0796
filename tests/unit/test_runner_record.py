"""meta.json, as the run record writes it: every documented key, `format`, atomic rewrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.run_record import FORMAT, AppRecord, RunRecord

pytestmark = pytest.mark.unit

# What reports/ and docs/run-dir.md read: no key may go or change its meaning.
KEYS = [
    "format", "run_id", "scenario", "title", "seeds", "kind", "variant", "params", "symptom",
    "load", "app", "profile", "status", "error", "started_at", "load_started_at",
    "load_ended_at", "ended_at", "versions", "git_commit", "machine", "toxics", "prometheus",
]  # fmt: skip


def _record(tmp_path: Path) -> RunRecord:
    return RunRecord(
        path=tmp_path / "meta.json", run_id="20261201-000000-memory-leak-faulty",
        scenario="memory-leak", title="A leak", seeds=[2], kind="fault", variant="faulty",
        params={"related": 20}, symptom={"metric": "rss", "op": ">", "threshold": 10.0},
        load={"workload": "shop", "users": 10},
        app=AppRecord(server="uvicorn", workers=1, host="127.0.0.1", port=1234,
                      state_file="/tmp/state.json"),
        profile="none",
    )  # fmt: skip


def _meta(tmp_path: Path) -> dict[str, object]:
    data = json.loads((tmp_path / "meta.json").read_text())
    assert isinstance(data, dict)
    return data


def test_a_new_record_has_every_key_in_order_and_says_its_format(tmp_path: Path) -> None:
    record = _record(tmp_path)
    record.write()
    meta = _meta(tmp_path)
    assert list(meta) == KEYS
    assert meta["format"] == FORMAT == 1
    assert meta["status"] == "running" and meta["error"] is None
    assert meta["app"] == {"server": "uvicorn", "workers": 1, "host": "127.0.0.1", "port": 1234,
                           "state_file": "/tmp/state.json", "command": [],
                           "worker_class": "uvicorn", "threads": 1, "pid": None}  # fmt: skip
    machine = meta["machine"]
    assert isinstance(machine, dict)
    assert set(machine) == {"hostname", "cpus", "memory_gb", "platform"}
    versions = meta["versions"]
    assert isinstance(versions, dict) and {"python", "lab"} <= set(versions)
    assert meta["started_at"] and meta["load_started_at"] is None and meta["ended_at"] is None


def test_each_change_is_on_disk_at_once(tmp_path: Path) -> None:
    record = _record(tmp_path)
    record.write()
    record.app_command(["python", "-m", "uvicorn"])
    assert _meta(tmp_path)["app"]["command"] == ["python", "-m", "uvicorn"]  # type: ignore[index]
    record.toxics_applied([{"link": "postgres", "type": "latency"}])
    assert _meta(tmp_path)["toxics"] == [{"link": "postgres", "type": "latency"}]
    record.scraped_by("http://127.0.0.1:9090")
    assert _meta(tmp_path)["prometheus"] == "http://127.0.0.1:9090"
    record.load_started()
    record.load_ended()
    meta = _meta(tmp_path)
    assert str(meta["load_started_at"]) <= str(meta["load_ended_at"])
    record.finish("interrupted", None)
    meta = _meta(tmp_path)
    assert meta["status"] == "interrupted" and meta["ended_at"]
    # atomic: written whole to a temporary file, then renamed; none is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_cleanup_errors_appear_only_when_a_step_failed(tmp_path: Path) -> None:
    record = _record(tmp_path)
    record.write()
    record.cleanup_failed([])
    assert "cleanup_errors" not in _meta(tmp_path)
    record.cleanup_failed(["remove toxics: proxy API down"])
    record.cleanup_failed(["build report: boom"])
    meta = _meta(tmp_path)
    assert list(meta)[-1] == "cleanup_errors"
    assert meta["cleanup_errors"] == ["remove toxics: proxy API down", "build report: boom"]
