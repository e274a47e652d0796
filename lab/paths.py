"""Where the lab keeps its state (.lab/) and how run ids are made."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

__all__ = ["database_url_for", "lab_home", "new_run_dir", "parse_duration"]


def lab_home() -> Path:
    """`.lab/` of the current directory, or LAB_HOME: data, toggles, pids, binaries."""
    return Path(os.environ.get("LAB_HOME", ".lab")).resolve()


def new_run_dir(out: Path, slug: str, variant: str, *, blind: bool = False) -> Path:
    """A new folder `<time>-<slug>-<variant>` (a blind run: `<time>-drill`) under out."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-drill" if blind else f"{stamp}-{slug}-{variant}"
    candidate = out / base
    n = 1
    while candidate.exists():
        n += 1
        candidate = out / f"{base}-{n}"
    candidate.mkdir(parents=True)
    return candidate


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """'30s', '2m', '1.5h', '90' -> seconds. Raises ValueError with a clear message."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a duration; write it like 30s, 2m or 90")
    value, unit = float(match.group(1)), match.group(2) or "s"
    seconds = value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got '{text}'")
    return seconds


def database_url_for(rows: int) -> str:
    """$DATABASE_URL, or the lab's SQLite shop of that many products."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{lab_home()}/data/shop-{rows}.sqlite"
