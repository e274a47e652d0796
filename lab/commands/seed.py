"""`lab seed --rows N`: migrate and fill the shop database (deterministic)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from lab.paths import database_url_for

__all__ = ["run"]


def run(
    rows: int, database_url: str | None = None, console: Console | None = None
) -> dict[str, int]:
    from target_app.seed import seed

    url = database_url or database_url_for(rows)
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                  console=console or Console(stderr=True)) as progress:  # fmt: skip
        tasks: dict[str, object] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=total)
            progress.update(tasks[table], completed=done)  # type: ignore[arg-type]

        counts = seed(url, rows, progress=report)
    return counts
