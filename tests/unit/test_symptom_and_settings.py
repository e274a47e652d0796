"""Symptom predicates and the Settings validators that refuse unsafe set-ups."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from faults import Symptom
from target_app.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("op", "value", "present"),
    [(">", 6.0, True), (">", 5.0, False), (">=", 5.0, True), ("<", 4.0, True), ("<=", 6.0, False)],
)
def test_symptom_operators(op: str, value: float, present: bool) -> None:
    symptom = Symptom(metric="m", op=op, threshold=5.0, description="d")  # type: ignore[arg-type]
    assert symptom.evaluate({"m": value}).present is present


def test_symptom_missing_value_is_not_present() -> None:
    result = Symptom("m", ">", 1.0, "d").evaluate({"m": None})
    assert result.present is False and result.value is None


def test_symptom_round_trips_through_meta_json() -> None:
    symptom = Symptom("rss_slope_mb_per_10k_requests", ">", 5.0, "grows")
    assert Symptom.from_dict(symptom.as_dict()) == symptom


def test_faults_env_is_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTS", "memory-leak, other")
    assert Settings().faults == ["memory-leak", "other"]


def test_admin_api_refuses_a_weak_token() -> None:
    with pytest.raises(ValidationError, match="LAB_ADMIN_TOKEN"):
        Settings(lab_admin_enabled=True, lab_admin_token="changeme")  # type: ignore[arg-type]
    # The token also opens the live log, which runs without the admin API: a weak one is
    # refused whenever it is set.
    with pytest.raises(ValidationError, match="LAB_ADMIN_TOKEN"):
        Settings(lab_admin_enabled=False, lab_admin_token="short")  # type: ignore[arg-type]


def test_production_refuses_faults_at_start_up() -> None:
    with pytest.raises(ValidationError, match="production"):
        Settings(
            lab_env="production",
            faults=["memory-leak"],
            cursor_secret="a-real-secret-from-the-vault",  # type: ignore[arg-type]
        )


def test_symptom_on_a_route_relative_to_another() -> None:
    summary = {"routes": {"GET deep": {"p50_ms": 400.0}, "GET first": {"p50_ms": 10.0}}}
    deep = Symptom("p50_ms", ">=", 20.0, "d", route="GET deep", baseline_route="GET first")
    result = deep.evaluate(summary)
    assert result.value == 40.0 and result.present
    assert "GET deep" in result.name and "GET first" in result.name
    assert Symptom.from_dict(deep.as_dict()) == deep
    missing = Symptom("p50_ms", ">=", 20.0, "d", route="GET nowhere", baseline_route="GET first")
    assert missing.evaluate(summary).present is False


def test_production_refuses_the_public_cursor_secret() -> None:
    with pytest.raises(ValidationError, match="CURSOR_SECRET"):
        Settings(lab_env="production")
    Settings(lab_env="production", cursor_secret="a-real-secret-from-the-vault")  # type: ignore[arg-type]
