"""What the diagnosis may read of a run dir: what an engineer has in production.

`blind_copy(run_dir, dest)` writes a run dir with only that, and the engine reads
nothing else (reports/diagnosis/engine.py diagnoses the blinded copy):

- metrics.csv, without `lab_fault_active` (the lab's toggle gauge), the load
  generator's own process samples (`lab_locust_*`) and any series whose name or
  labels name a scenario or a variant;
- requests.csv (what the clients saw; its route names are the app's routes);
- app.log, each record without the fields that name the lab's toggles (`active`,
  `env`), its logger names under the lab's `faults` package renamed to the app's
  (`faults.redis_timeout` is `target_app.cache` to someone running it), and the
  words that name a scenario or a variant masked in every string;
- proxy-access.log (the load balancer's log, a release's runs);
- profile/profile.json, masked the same way (the lab's module and class names
  say which scenario runs: `faults/memory_leak.py`, `FaultyQuotes`);
- meta.json with the load window, the load's size and shape (what the traffic
  was), the app's server and worker count (how it is deployed) and the machine,
  but never the scenario, its variant, parameters, toxics, symptom, workload, title,
  seeds, run id, command line or state file.

Everything else (Locust's CSVs, audit.json, rollout.json, webhooks.csv, the
reports' own output, Toxiproxy) stays out: they hold the lab's ground truth or the
load generator's view, which production does not have.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import orjson

__all__ = ["BLIND_FILES", "KEPT_META", "blind_copy", "mask"]

# Files copied through a filter (the value) or as they are (None).
BLIND_FILES = ("meta.json", "metrics.csv", "requests.csv", "app.log", "proxy-access.log")
PROFILE_FILE = "profile/profile.json"

# meta.json: the keys kept, and of the nested objects the keys kept of them.
KEPT_META: dict[str, tuple[str, ...] | None] = {
    "format": None,
    "status": None,
    "started_at": None,
    "load_started_at": None,
    "load_ended_at": None,
    "ended_at": None,
    "profile": None,
    "load": ("shape", "users", "spawn_rate", "duration_s", "rate", "load_processes"),
    "app": ("server", "workers", "worker_class", "threads", "host"),
    "machine": ("cpus", "memory_gb"),
}
# app.log record fields that are the lab's, not the app's.
DROPPED_LOG_FIELDS = ("active", "env")
DROPPED_SERIES_PREFIXES = ("lab_fault_active", "lab_locust_")
MASK = "•"


@cache
def _names() -> re.Pattern[str]:
    """Words that say which scenario or variant runs: every slug (with - or _), the
    module of each scenario and the two variants' names, in any case."""
    from faults._registry import all_scenarios  # a function-level import: reports load without it

    words: set[str] = {"faulty", "fixed"}
    for scenario in all_scenarios():
        words.add(scenario.slug)
        words.add(scenario.slug.replace("-", "_"))
        words.add(scenario.slug.replace("-", ""))
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(alternatives, re.IGNORECASE)


def mask(text: str) -> str:
    """The text with every word naming a scenario or a variant replaced by a bullet."""
    return _names().sub(MASK, text)


def _mask_any(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [_mask_any(v) for v in value]
    if isinstance(value, dict):
        return {mask(str(k)): _mask_any(v) for k, v in value.items()}
    return value


def _blind_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, nested in KEPT_META.items():
        if key not in meta:
            continue
        value = meta[key]
        if nested is not None and isinstance(value, dict):
            value = {k: value[k] for k in nested if k in value}
        out[key] = value
    return out


def _blind_metrics(lines: Iterable[str]) -> Iterable[str]:
    names = _names()
    for number, line in enumerate(lines):
        if number == 0:  # the header
            yield line
            continue
        parts = line.split(",", 4)
        if len(parts) < 5:
            continue
        name, labels = parts[2], parts[3]
        if name.startswith(DROPPED_SERIES_PREFIXES) or names.search(name) or names.search(labels):
            continue
        yield line


def _blind_log_record(record: dict[str, Any]) -> dict[str, Any]:
    for key in DROPPED_LOG_FIELDS:
        record.pop(key, None)
    logger = record.get("logger")
    if isinstance(logger, str) and (logger == "faults" or logger.startswith("faults.")):
        record["logger"] = "target_app"
    masked = _mask_any(record)
    assert isinstance(masked, dict)
    return masked


def _blind_log(lines: Iterable[bytes]) -> Iterable[bytes]:
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            # Not a JSON record (a library printing to stderr): kept, masked.
            yield mask(line.decode("utf-8", "replace").rstrip("\n")).encode() + b"\n"
            continue
        if isinstance(record, dict):
            yield orjson.dumps(_blind_log_record(record)) + b"\n"


def blind_copy(run_dir: Path, dest: Path) -> Path:
    """Write the blinded run dir of `run_dir` into `dest` (created; must not exist)."""
    run_dir, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True)
    meta_path = run_dir / "meta.json"
    if meta_path.is_file():
        try:
            meta = orjson.loads(meta_path.read_bytes())
        except orjson.JSONDecodeError:
            meta = None
        if isinstance(meta, dict):
            (dest / "meta.json").write_bytes(
                orjson.dumps(_blind_meta(meta), option=orjson.OPT_INDENT_2)
            )
        else:  # left for the reader to refuse with its own message
            shutil.copyfile(meta_path, dest / "meta.json")
    source = run_dir / "metrics.csv"
    if source.is_file():
        with (
            source.open(encoding="utf-8", errors="replace") as src,
            (dest / "metrics.csv").open("w") as out,
        ):
            out.writelines(_blind_metrics(src))
    # A distributed run not merged: its parts stand for requests.csv (reports/evidence.py).
    for source in [run_dir / "requests.csv", *sorted(run_dir.glob("requests.part*.csv"))]:
        if source.is_file():
            shutil.copyfile(source, dest / source.name)
    source = run_dir / "app.log"
    if source.is_file():
        with source.open("rb") as src, (dest / "app.log").open("wb") as out:
            out.writelines(_blind_log(src))
    source = run_dir / "proxy-access.log"
    if source.is_file():
        shutil.copyfile(source, dest / "proxy-access.log")
    source = run_dir / PROFILE_FILE
    if source.is_file():
        try:
            profile = orjson.loads(source.read_bytes())
        except orjson.JSONDecodeError:
            profile = None
        if isinstance(profile, dict):
            profile.pop("files", None)  # paths into files the diagnosis does not read
            (dest / "profile").mkdir()
            (dest / PROFILE_FILE).write_bytes(orjson.dumps(_mask_any(profile)))
    return dest
