"""microservice-cascade's parts that need no service: the intermittent toxic's contract,
the audit's file and the summary's numbers from it."""

from __future__ import annotations

from pathlib import Path

import pytest

import faults
from faults import microservice_cascade
from reports.formats import AuditFile
from reports.steps import AUDIT_COUNTS, audit_numbers

pytestmark = pytest.mark.unit


def test_an_intermittent_toxic_needs_both_its_period_and_its_window_inside_it() -> None:
    with pytest.raises(ValueError, match="both"):
        faults.Toxic("inventory", "timeout", every_s=6.0)
    with pytest.raises(ValueError, match="for_s < every_s"):
        faults.Toxic("inventory", "timeout", every_s=2.0, for_s=2.0)
    toxic = faults.Toxic("inventory", "timeout", {"timeout": 0}, every_s=6.0, for_s=2.0)
    assert toxic.as_dict()["every_s"] == 6.0 and toxic.as_dict()["for_s"] == 2.0
    assert "every_s" not in faults.Toxic("upstream", "latency").as_dict()


def test_the_scenario_partitions_the_inventory_link_and_audits_after_the_drain() -> None:
    scenario = microservice_cascade.SCENARIO
    (toxic,) = scenario.toxics
    assert toxic.link == "inventory" and toxic.every_s is not None
    assert scenario.audit is microservice_cascade.run_audit
    assert scenario.drains == ("outbox_messages",)
    # The request's own attempts end before the relay may take its message.
    params = microservice_cascade.PlacementParams()
    assert params.attempts * (params.timeout_s + 0.5) < microservice_cascade.REQUEST_OWNS_S


def test_audit_file_round_trips_and_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    counts = {name: 3 for name in AUDIT_COUNTS}
    AuditFile(tmp_path).write("microservice-cascade", counts)
    assert AuditFile(tmp_path).read() == {name: 3.0 for name in AUDIT_COUNTS}
    (tmp_path / AuditFile.NAME).write_text('{"format": 2, "counts": {"reservations": 1}}')
    assert AuditFile(tmp_path).read() is None
    (tmp_path / AuditFile.NAME).write_text("not json")
    assert AuditFile(tmp_path).read() is None


def test_audit_numbers_fill_the_summary_or_say_why_not(tmp_path: Path) -> None:
    from reports.evidence import Evidence

    ev = Evidence(run_dir=tmp_path)
    out: dict[str, object] = {}
    notes: list[str] = []
    audit_numbers(ev, out, notes)
    assert out == {} and notes == []  # no audit: nothing measured, nothing to say
    AuditFile(tmp_path).write("microservice-cascade", {"inconsistent_orders": 4, "x": 1})
    audit_numbers(ev, out, notes)
    assert out == {"inconsistent_orders": 4}
    (tmp_path / AuditFile.NAME).write_text("{")
    audit_numbers(ev, {}, notes)
    assert notes == ["audit.json could not be read"]


def test_only_a_scenario_that_requires_the_inventory_is_given_its_address() -> None:
    """An app that knows the inventory relays its outbox and counts placed orders at each
    scrape: queries that would land in every other scenario's numbers (no-cache counts
    the app's DB statements) if each run were handed the address of a running inventory."""
    from lab.runner import scenario_service_env

    running = {"postgres", "redis", "toxiproxy", "upstream", "inventory"}
    mine = scenario_service_env(microservice_cascade.SCENARIO, running)
    assert {"INVENTORY_URL", "INVENTORY_DIRECT_URL", "DATABASE_URL"} <= set(mine)
    for scenario in faults.all_scenarios():
        if "inventory" not in scenario.requires:
            assert "INVENTORY_URL" not in scenario_service_env(scenario, running), scenario.slug
