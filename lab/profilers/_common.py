"""What both profilers share: the profile dir, profile.json, running a rendering tool."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from lab.processes import die_with_parent

__all__ = [
    "PROFILE_DIR",
    "TOP_N",
    "BaseProfiler",
    "rel",
    "run_tool",
    "short_path",
    "tool",
    "write_json",
]

PROFILE_DIR = "profile"
TOP_N = 10


def tool(name: str) -> str:
    """The venv's copy of a console script (the lab may run without the venv activated)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def rel(run_dir: Path, path: Path) -> str:
    return path.relative_to(run_dir).as_posix()


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def short_path(file: str) -> str:
    """A file name a reader can place: relative to the project, a package, or the stdlib."""
    if not file or file.startswith("<"):
        return file
    path = Path(file)
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):  # first: the venv may be in the project
        if marker in parts:
            i = len(parts) - 1 - parts[::-1].index(marker)
            return "/".join(parts[i + 1 :])
    with contextlib.suppress(ValueError, OSError):
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    with contextlib.suppress(ValueError, OSError):
        return path.resolve().relative_to(_STDLIB).as_posix()
    return path.as_posix()


def run_tool(args: Sequence[str], timeout: float = 600.0) -> tuple[bool, str]:
    """Run a rendering command; (ok, what went wrong). Never raises."""
    try:
        done = subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            preexec_fn=die_with_parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{' '.join(args[:4])}: {exc}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:]
        return False, f"{' '.join(args[:4])} exited {done.returncode}: {' '.join(tail)}"
    return True, ""


class BaseProfiler:
    """The files of `<run_dir>/profile/` and the writing of profile.json."""

    name = ""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.profile_dir = self.run_dir / PROFILE_DIR
        self.command: list[str] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def detach(self) -> None:
        return None

    def _file(self, name: str) -> Path:
        return self.profile_dir / name

    def _write_profile(
        self,
        files: dict[str, Path],
        top_title: str,
        top: list[dict[str, Any]],
        errors: list[str],
        **extra: Any,
    ) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "tool": self.name,
            "files": {
                key: rel(self.run_dir, path)
                for key, path in files.items()
                if path.exists() and path.stat().st_size > 0
            },
            "top_title": top_title,
            "top": top,
            "command": self.command,
            "error": "; ".join(errors) if errors else None,
            **extra,
        }
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.profile_dir / "profile.json", profile)
        return profile
