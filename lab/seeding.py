"""The shop database, migrated and filled, with a progress bar: for `lab seed`, `lab serve`,
every run and the benchmarks alike.

Seeding is idempotent (target_app.seed keeps a database that already has the
rows), so callers seed every time rather than guess whether they must.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from lab.paths import database_url_for

__all__ = ["seed_database"]


def seed_database(
    rows: int, database_url: str | None = None, console: Console | None = None
) -> tuple[str, dict[str, int]]:
    """Migrate and fill the shop at `database_url` (default: the lab's SQLite of `rows`
    products); returns the URL and the rows per table."""
    from target_app.seed import seed  # SQLAlchemy and the models: only when seeding

    url = database_url or database_url_for(rows)
    # Transient: once seeded, the bars say nothing more; the caller reports the counts.
    with Progress(
        TextColumn("seeding {task.description}"), BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        console=console or Console(stderr=True), transient=True,
    ) as progress:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=total)
            progress.update(tasks[table], completed=done)

        counts = seed(url, rows, progress=report)
    return url, counts
