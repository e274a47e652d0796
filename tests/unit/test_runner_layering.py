"""The runner is a library: lab/commands/* and lab/cli.py may import it, never the reverse."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

LAB = Path(__file__).resolve().parents[2] / "lab"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_module_below_the_commands_imports_a_command() -> None:
    offenders = {}
    for path in sorted(LAB.rglob("*.py")):
        relative = path.relative_to(LAB.parent).as_posix()
        if relative.startswith("lab/commands/") or relative == "lab/cli.py":
            continue
        bad = sorted(m for m in _imports(path) if m.startswith(("lab.commands", "lab.cli")))
        if bad:
            offenders[relative] = bad
    assert offenders == {}


def test_a_run_loads_no_command_module() -> None:
    code = "import lab.runner, lab.seeding, lab.dashboard, lab.profilers\n"
    code += "import sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    assert [m for m in modules if m.startswith(("lab.commands", "lab.cli"))] == []
