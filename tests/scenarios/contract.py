"""The scenario contract, as a test: faulty shows the symptom, fixed does not.

Each scenario's test file calls `prove(slug, ...)`; adding a scenario touches
only its module in faults/ and its own test file. Runs go through the real CLI
(`python -m lab.cli run`) in a child process, as a user's would, so that the
environment (LAB_HOME, LAB_PORT_OFFSET of the test services) is the child's own.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Every proof's measured symptom, faulty and fixed, kept for the session's
# closing table (tests/conftest.py): how far each sits from its threshold is
# what tells a robust proof from one a noisy machine can flip.
MEASURED: list[dict[str, Any]] = []


def direct_database_url() -> str:
    """The test services' PostgreSQL, not through Toxiproxy: to count what a run left."""
    from lab.topology import LINKS
    from tests.conftest import OFFSET

    return f"postgresql+psycopg://lab@127.0.0.1:{LINKS['postgres'].direct_port + int(OFFSET)}/shop"


def direct_redis_url() -> str:
    """The test services' Redis, not through Toxiproxy."""
    from lab.topology import LINKS
    from tests.conftest import OFFSET

    return f"redis://127.0.0.1:{LINKS['redis'].direct_port + int(OFFSET)}/0"


def last_sample(run_dir: Path, name: str, labels: str = "") -> float:
    """A series of the app's /metrics at the run's last sample (metrics.csv), 0 if absent."""
    last = 0.0
    with (run_dir / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["name"] == name and row["labels"] == labels:
                last = float(row["value"])
    return last


def run_variant(
    slug: str, fixed: bool, out: Path, env: dict[str, str] | None = None, **options: Any
) -> dict[str, Any]:
    args = [sys.executable, "-m", "lab.cli", "run", slug, "--out", str(out)]
    if fixed:
        args.append("--fixed")
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(
        args, env={**os.environ, **(env or {})}, cwd=REPO, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    variant = "fixed" if fixed else "faulty"
    assert done.returncode == 0, (
        f"{slug} {variant} exited {done.returncode}:\n{done.stderr[-3000:]}"
    )
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed", summary
    return summary


def prove(
    slug: str, out: Path, env: dict[str, str] | None = None, **options: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    faulty = run_variant(slug, False, out, env, **options)
    fixed = run_variant(slug, True, out, env, **options)
    assert_symptoms(slug, faulty, fixed)
    return faulty, fixed


def assert_symptoms(slug: str, faulty: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Faulty shows the symptom, fixed does not; both values kept for the closing table."""
    f_sym, x_sym = faulty["symptom"], fixed["symptom"]
    MEASURED.append(
        {
            "slug": slug,
            "metric": f_sym["name"],
            "op": f_sym["op"],
            "threshold": f_sym["threshold"],
            "faulty": f_sym["value"],
            "fixed": x_sym["value"],
            "p95_ms": (faulty.get("p95_ms"), fixed.get("p95_ms")),
        }
    )
    assert f_sym["present"] is True, f"faulty {slug} did not show its symptom: {f_sym}"
    assert x_sym["present"] is False, f"fixed {slug} still shows the symptom: {x_sym}"


# What a run dir holds that production does not: the lab's ground truth (which
# scenario, variant, parameters, toxics), the load generator's records and the
# reports' own output. The diagnosis must not change when they are gone.
GROUND_TRUTH_META = ("scenario", "title", "seeds", "kind", "variant", "params", "symptom",
                     "toxics", "run_id", "prometheus", "git_commit")  # fmt: skip
GROUND_TRUTH_FILES = ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
                      "locust_exceptions.csv", "locust.html", "locust.log", "audit.json",
                      "rollout.json", "checkouts.csv", "webhooks.csv", "summary.json",
                      "diagnosis.json", "report.md", "report.html")  # fmt: skip


def diagnosis_of(run_dir: Path) -> dict[str, Any]:
    from reports.diagnosis import diagnose

    return diagnose(run_dir).as_dict()


def assert_diagnosis_is_blind(run_dir: Path, scratch: Path) -> None:
    """The diagnosis of the run dir equals that of a copy under a neutral name with
    the ground truth removed: meta.json's fields, the files above, the lab's toggle
    gauge in metrics.csv and the toggles the app logged at start."""
    import shutil

    stripped = scratch / "anonymous-run"
    shutil.copytree(run_dir, stripped)
    meta = json.loads((stripped / "meta.json").read_text())
    for key in GROUND_TRUTH_META:
        meta.pop(key, None)
    meta["load"].pop("workload", None)
    for key in ("command", "state_file", "port"):
        meta["app"].pop(key, None)
    (stripped / "meta.json").write_text(json.dumps(meta))
    for name in GROUND_TRUTH_FILES:
        (stripped / name).unlink(missing_ok=True)
    shutil.rmtree(stripped / "plots", ignore_errors=True)
    lines = (stripped / "metrics.csv").read_text().splitlines(keepends=True)
    (stripped / "metrics.csv").write_text(
        "".join(line for line in lines if ",lab_fault_active," not in line)
    )
    records = []
    for line in (stripped / "app.log").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            records.append(line)
            continue
        record.pop("active", None)
        records.append(json.dumps(record))
    (stripped / "app.log").write_text("\n".join(records) + "\n")
    assert diagnosis_of(stripped) == diagnosis_of(run_dir)
