"""Fixtures of the in-process route tests: a small seeded SQLite shop and the app on it.

`lab` is one app for the whole session, on a database no test writes to; its
fault toggles are reset after every test. Tests that write (orders, imports,
ETL) or that leave a variant's state behind (pool-exhaustion's sessions) take
`fresh_lab`: a new app on a fresh copy of the seeded database
(`fresh_lab_with_500s` for the tests about the app's unhandled exceptions).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.helpers import ROWS, Lab, copy_db, lab_settings, open_lab, sqlite_url

HERE = Path(__file__).resolve().parent
COVERAGE_MODULE = "test_routes_covered.py"
# Set by the hooks below: whether this session runs every test of tests/app.
RUNS_ALL_OF_TESTS_APP = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def pristine_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded shop, never opened by an app: the source of every copy."""
    from target_app.seed import seed

    path = tmp_path_factory.mktemp("app-db") / "shop.sqlite"
    counts = seed(sqlite_url(path), ROWS)
    assert counts["products"] == ROWS
    return path


@pytest.fixture(scope="session")
def shared_lab(pristine_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("shared-lab")
    database = copy_db(pristine_db, home / "shop.sqlite")
    with open_lab(lab_settings(home, database)) as lab:
        yield lab


@pytest.fixture
def lab(shared_lab: Lab) -> Iterator[Lab]:
    """The session's app, every fault off before and after the test."""
    shared_lab.reset()
    yield shared_lab
    shared_lab.reset()


@pytest.fixture
def writable_db(pristine_db: Path, tmp_path: Path) -> Path:
    return copy_db(pristine_db, tmp_path / "shop.sqlite")


@pytest.fixture
def fresh_lab(writable_db: Path, tmp_path: Path) -> Iterator[Lab]:
    """A new app on its own copy of the seeded database, for tests that write."""
    with open_lab(lab_settings(tmp_path / "lab", writable_db)) as lab:
        yield lab


@pytest.fixture
def fresh_lab_with_500s(writable_db: Path, tmp_path: Path) -> Iterator[Lab]:
    """`fresh_lab`, where an unhandled exception comes back as the 500 a server sends
    instead of being raised in the test: for the tests about those 500s."""
    with open_lab(lab_settings(tmp_path / "lab", writable_db), raise_app_exceptions=False) as lab:
        yield lab


# --- the route coverage check runs last, and only when it can be meaningful ---


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RUNS_ALL_OF_TESTS_APP] = True


def _ours(item: pytest.Item) -> bool:
    return item.path.resolve().parent == HERE


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if _ours(item):
            item.config.stash[RUNS_ALL_OF_TESTS_APP] = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = {item.path.name for item in items if _ours(item)}
    modules = {path.name for path in HERE.glob("test_*.py")}
    if ours and ours != modules:
        config.stash[RUNS_ALL_OF_TESTS_APP] = False
    # The coverage check reads what every other test of tests/app requested: last.
    items.sort(key=lambda item: _ours(item) and item.path.name == COVERAGE_MODULE)
