"""`lab drill`'s case, scoring and book, without running a drill (that is
tests/integration/test_drill.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import faults
from lab.drill import DrillBook, DrillCase, pick_case, score
from lab.errors import LabError


def test_a_seed_gives_its_case_and_every_case_is_diagnosable_and_valid() -> None:
    first = pick_case(3, "easy", 1.0)
    again = pick_case(3, "easy", 1.0)
    assert (first.slug, first.fixed, first.params, first.users, first.rate) == (
        again.slug, again.fixed, again.params, again.users, again.rate,
    )  # fmt: skip
    catalogue = {s.slug: s for s in faults.all_scenarios()}
    cases = [pick_case(seed, "easy", 0.5) for seed in range(60)]
    assert len({c.slug for c in cases}) > 10
    assert any(c.fixed for c in cases) and not all(c.fixed for c in cases)
    for case in cases:
        assert catalogue[case.slug].kind != "pattern"
        faults.validate_params(catalogue[case.slug], case.params)
        assert case.duration_s == 30


def test_the_answer_of_a_case() -> None:
    def case(slug: str, fixed: bool) -> DrillCase:
        return DrillCase("x", 0, "easy", slug, fixed, {}, 10, None, "constant", 60)

    assert case("n-plus-one", False).answer == "n-plus-one"
    assert case("n-plus-one", True).answer == "healthy"
    assert case("db-latency", True).answer == "latency on the database link"


def test_hard_drills_say_what_is_missing() -> None:
    with pytest.raises(LabError, match="two scenarios"):
        pick_case(1, "hard", 1.0)


def test_score_counts_right_first_then_time_then_hints() -> None:
    assert score(False, 5.0, 0) == 0
    assert score(True, 30.0, 0) == 100
    assert score(True, 60.0 + 95.0, 0) == 91
    assert score(True, 30.0, 2) == 70
    assert score(True, 3600.0, 0) == 50  # time costs at most half
    assert score(True, 3600.0, 9) == 0


def test_the_book_refuses_what_cannot_be_done_yet(tmp_path: Path) -> None:
    book = DrillBook(tmp_path)
    with pytest.raises(LabError, match="no drill under way"):
        book.answer("n-plus-one", None)  # type: ignore[arg-type]
    with pytest.raises(LabError, match="no drill under way"):
        book.hint()
    with pytest.raises(LabError, match="no drill answered yet"):
        book.reveal()
    assert book.board() == []
