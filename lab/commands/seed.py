"""`lab seed --rows N`: migrate and fill the shop database (deterministic)."""

from __future__ import annotations

from rich.console import Console

from lab.seeding import seed_database

__all__ = ["run"]


def run(
    rows: int, database_url: str | None = None, console: Console | None = None
) -> dict[str, int]:
    _url, counts = seed_database(rows, database_url, console)
    return counts
