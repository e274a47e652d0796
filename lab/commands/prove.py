"""`lab prove SLUG`: faulty, then fixed, under the same load; then compare them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from lab.commands import compare
from lab.errors import LabError
from lab.runner import RunOptions, RunResult
from lab.runner import run as run_one

__all__ = ["run"]


def run(options: RunOptions, console: Console | None = None) -> tuple[Path, RunResult, RunResult]:
    console = console or Console(stderr=True)
    before = run_one(replace(options, fixed=False), console)
    if before.status != "completed":
        raise LabError(f"the faulty run {before.status}; nothing to compare ({before.run_dir})")
    console.print(f"faulty run: {before.run_dir}")
    after = run_one(replace(options, fixed=True), console)
    if after.status != "completed":
        raise LabError(f"the fixed run {after.status}; nothing to compare ({after.run_dir})")
    console.print(f"fixed run: {after.run_dir}")
    out = options.out / f"compare-{before.run_dir.name}"
    return compare.run(before.run_dir, after.run_dir, out), before, after
