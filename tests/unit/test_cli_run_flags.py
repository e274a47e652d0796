"""`lab run` and `lab prove` share one definition of a run's options (lab.cli.RunFlags)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lab import cli
from lab.runner import RunOptions, RunResult

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
# What `make load` / `make compare` pass (Makefile's RUN_FLAGS), with every value set.
MAKE_VARIABLES = ["duration=20s", "users=30", "workers=2", "profile=memray", "shape=step",
                  "out=somewhere", "workload=mixed", "rate=200", "load_processes=2"]  # fmt: skip
MAKE_FLAGS = ["--duration", "20s", "--users", "30", "--workers", "2", "--profile", "memray",
              "--shape", "step", "--out", "somewhere", "--workload", "mixed",
              "--rate", "200", "--load-processes", "2"]  # fmt: skip
EXPECTED = RunOptions(
    slug="memory-leak", duration_s=20.0, users=30, workers=2, profile="memray", shape="step",
    out=Path("somewhere"), workload="mixed", rate=200.0, load_processes=2,
)  # fmt: skip


def _options(name: str) -> dict[str, Any]:
    """The click parameters of a command, by name (typer vendors its own click)."""
    command: Any = typer.main.get_command(cli.app)
    return {p.name: p for p in command.commands[name].params}


def test_run_and_prove_have_the_same_options_but_fixed() -> None:
    run, prove = _options("run"), _options("prove")
    assert set(run) - set(prove) == {"fixed"}
    assert set(prove) == {"slug", *(f.name for f in dataclasses.fields(cli.RunFlags))}
    for name, option in prove.items():
        if name == "slug":
            continue
        twin = run[name]
        assert (twin.opts, twin.default, twin.help) == (option.opts, option.default, option.help)


def test_the_flags_keep_their_names_and_defaults() -> None:
    run = _options("run")
    flags = {name: (p.opts, p.default) for name, p in run.items() if name != "slug"}
    assert flags["duration"] == (["--duration", "-d"], None)
    assert flags["users"] == (["--users", "-u"], None)
    assert flags["spawn_rate"] == (["--spawn-rate", "-r"], None)
    assert flags["shape"] == (["--shape"], "constant")
    assert flags["workers"] == (["--workers", "-w"], None)
    assert flags["profile"] == (["--profile", "-p"], "none")
    assert flags["out"] == (["--out"], Path("runs"))
    assert flags["param"][0] == ["--param"]
    assert flags["rows"] == (["--rows"], None)  # the scenario's default_load, or 10,000
    assert flags["workload"] == (["--workload"], None)
    assert flags["rate"] == (["--rate"], None)
    assert flags["load_processes"] == (["--load-processes"], 1)
    assert flags["fixed"] == (["--fixed"], False)


def test_no_new_flag_leaves_the_closed_model_on_one_process() -> None:
    options = cli.RunFlags().options("memory-leak")
    assert (options.rate, options.load_processes) == (None, 1)


@pytest.mark.parametrize("target", ["load", "compare"])
def test_the_makefile_passes_every_variable_as_its_flag(target: str) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", "fault=memory-leak", *MAKE_VARIABLES, target],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith(".venv/bin/lab "))
    words = shlex.split(line)
    assert words[1:3] == (["run", "memory-leak"] if target == "load" else ["prove", "memory-leak"])
    passed = dict(zip(words[3::2], words[4::2], strict=True))
    assert passed == dict(zip(MAKE_FLAGS[::2], MAKE_FLAGS[1::2], strict=True))


def test_make_load_flags_reach_the_runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[RunOptions] = []

    def fake_run(options: RunOptions, console: Any = None) -> RunResult:
        seen.append(options)
        return RunResult(tmp_path, "completed", None, {})

    monkeypatch.setattr("lab.runner.run", fake_run)
    result = CliRunner().invoke(
        cli.app, ["run", "memory-leak", "--fixed", *MAKE_FLAGS, "--param", "related=5"]
    )
    assert result.exit_code == 0, result.output
    assert seen == [dataclasses.replace(EXPECTED, fixed=True, params={"related": 5})]
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path)


def test_make_compare_flags_reach_prove(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[RunOptions] = []
    (tmp_path / "comparison.json").write_text(json.dumps({"headline": "ok", "metrics": []}))

    def fake_prove(options: RunOptions, console: Any = None) -> tuple[Path, Any, Any]:
        seen.append(options)
        return tmp_path, None, None

    monkeypatch.setattr("lab.commands.prove.run", fake_prove)
    result = CliRunner().invoke(cli.app, ["prove", "memory-leak", *MAKE_FLAGS])
    assert result.exit_code == 0, result.output
    assert seen == [EXPECTED]


def test_a_bad_duration_is_one_sentence() -> None:
    with pytest.raises(Exception, match="--duration: 'soon' is not a duration"):
        cli.RunFlags(duration="soon").options("memory-leak")
