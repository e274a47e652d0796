"""/_lab, the admin API, in-process: tokens, refusals and their messages, the round trip,
production, and the API's absence unless the lab enables it.

tests/integration/test_admin_api.py asks the same of a real app process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import faults
from tests.app.helpers import Lab, copy_db, error_of, lab_settings, open_lab

pytestmark = pytest.mark.unit

SLUGS = sorted(s.slug for s in faults.all_scenarios())
TOGGLES = [s.slug for s in faults.all_scenarios() if s.toggled]
DEPLOYMENTS = [s.slug for s in faults.all_scenarios() if not s.toggled]
# Every admin route, with a request that would succeed given the token.
ROUTES = [
    ("GET", "/_lab/faults"),
    ("PUT", "/_lab/faults/memory-leak"),
    ("DELETE", "/_lab/faults/memory-leak"),
    ("POST", "/_lab/reset"),
]


def active_in_store(lab: Lab) -> dict[str, Any]:
    """What the toggle file says, read as a worker reads it."""
    return dict(faults.ToggleStore(lab.state_file).active())


def related_on_a_product_page(lab: Lab) -> int:
    """How many related products the product page renders: memory-leak's `related`."""
    response = lab.client.get("/products/2", headers={"X-Session-Id": uuid.uuid4().hex})
    assert response.status_code == 200
    return len(response.json()["related"])


# --- tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_token_is_401_and_says_how_to_send_one(lab: Lab, method: str, path: str) -> None:
    response = lab.client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(response)["message"] == (
        "the lab admin API needs a token: send 'Authorization: Bearer <LAB_ADMIN_TOKEN>'"
    )


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}, {"X-Lab-Token": ""}],
    ids=["basic", "empty-bearer", "empty-header"],
)
def test_a_token_that_is_not_a_bearer_token_is_none(lab: Lab, headers: dict[str, str]) -> None:
    response = lab.client.get("/_lab/faults", headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_wrong_token_is_403_and_changes_nothing(lab: Lab, method: str, path: str) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"X-Lab-Token": lab.token[:-1]}):
        response = lab.client.request(method, path, headers=headers)
        assert response.status_code == 403
        assert error_of(response)["message"] == "wrong lab admin token"
    assert active_in_store(lab) == {}
    assert related_on_a_product_page(lab) == 20  # still serving, the fixed variant


def test_the_token_also_comes_in_x_lab_token(lab: Lab) -> None:
    response = lab.client.get("/_lab/faults", headers={"X-Lab-Token": lab.token})
    assert response.status_code == 200


# --- refusals: unknown slug, deployment scenario, bad parameters --------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_an_unknown_slug_is_404_with_the_valid_ones(lab: Lab, method: str) -> None:
    response = lab.client.request(method, "/_lab/faults/memory-leek", headers=lab.auth)
    assert response.status_code == 404
    error = error_of(response)
    assert error["details"] == [{"slug": "memory-leek", "valid": SLUGS}]
    assert error["message"] == (
        f"unknown scenario 'memory-leek'; valid scenarios: {', '.join(SLUGS)}"
    )
    assert active_in_store(lab) == {}


@pytest.mark.parametrize("slug", DEPLOYMENTS)
def test_a_deployment_scenario_is_not_a_toggle(lab: Lab, slug: str) -> None:
    response = lab.client.put(f"/_lab/faults/{slug}", headers=lab.auth)
    assert response.status_code == 409
    message = error_of(response)["message"]
    assert f"'{slug}' is a {faults.get(slug).kind} scenario" in message
    assert f"`lab run {slug}` or `lab run {slug} --fixed`" in message
    assert active_in_store(lab) == {}


def test_the_catalogue_has_a_deployment_scenario() -> None:
    assert DEPLOYMENTS, "the 409 above is tested on no scenario"


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"related": 999}, "related"), ({"ttl_seconds": -1}, "ttl_seconds"), ({"bogus": 1}, "bogus")],
)
def test_a_bad_parameter_is_422_naming_it_and_the_accepted_ones(
    lab: Lab, body: dict[str, Any], needle: str
) -> None:
    response = lab.client.put("/_lab/faults/memory-leak", json=body, headers=lab.auth)
    assert response.status_code == 422
    error = error_of(response)
    assert error["message"].startswith("bad parameters for 'memory-leak': ")
    assert needle in error["message"]
    assert "Accepted: related: integer >= 0 <= 200 default 20" in error["message"]
    (details,) = error["details"]
    assert [e.split(":")[0] for e in details["errors"]] == [needle]
    assert set(details["valid"]) == {"related", "max_entries", "ttl_seconds"}
    assert active_in_store(lab) == {}
    assert related_on_a_product_page(lab) == 20


def test_a_scenario_without_parameters_accepts_none(lab: Lab) -> None:
    response = lab.client.put("/_lab/faults/n-plus-one", json={"depth": 2}, headers=lab.auth)
    assert response.status_code == 422
    error = error_of(response)
    assert error["message"].endswith("Accepted: none")
    assert error["details"][0]["valid"] == {}


@pytest.mark.parametrize("body", [[1, 2], "on", 3])
def test_parameters_are_a_json_object(lab: Lab, body: Any) -> None:
    response = lab.client.put("/_lab/faults/memory-leak", json=body, headers=lab.auth)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["body"]
    assert active_in_store(lab) == {}


# --- the happy paths: list, enable, disable, reset ----------------------------------------


def test_the_listing_describes_every_scenario(lab: Lab) -> None:
    response = lab.client.get("/_lab/faults", headers=lab.auth)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["pid"], int)
    assert [f["slug"] for f in body["faults"]] == SLUGS
    for entry in body["faults"]:
        scenario = faults.get(entry["slug"])
        assert entry["kind"] == scenario.kind
        assert entry["requires"] == list(scenario.requires)
        assert entry["active"] is False
        assert entry["params_in_effect"] is None
        assert entry["variant_here"] == "fixed"
        assert set(entry["params"]) == set(
            scenario.params.model_json_schema().get("properties", {})
        )


def test_enable_reaches_the_seam_at_once(lab: Lab) -> None:
    response = lab.client.put("/_lab/faults/memory-leak", json={"related": 5}, headers=lab.auth)
    assert response.status_code == 200
    expected = faults.get("memory-leak").params(related=5).model_dump(mode="json")
    assert response.json() == {"slug": "memory-leak", "active": True, "params": expected}
    entry = lab.listing()["memory-leak"]
    assert (entry["active"], entry["variant_here"]) == (True, "faulty")
    assert entry["params_in_effect"] == expected
    assert active_in_store(lab)["memory-leak"]["params"] == expected
    assert related_on_a_product_page(lab) == 5  # the parameter reached the seam
    # Enabled again with other parameters: they replace the first ones.
    again = lab.client.put("/_lab/faults/memory-leak", json={"related": 7}, headers=lab.auth)
    assert again.json()["params"]["related"] == 7
    assert related_on_a_product_page(lab) == 7


def test_enable_without_a_body_takes_the_defaults(lab: Lab) -> None:
    response = lab.client.put("/_lab/faults/cpu-bound", headers=lab.auth)
    assert response.status_code == 200
    assert response.json()["params"] == faults.get("cpu-bound").params().model_dump(mode="json")


def test_disable_says_whether_it_was_on(lab: Lab) -> None:
    lab.enable("memory-leak", related=3)
    response = lab.client.delete("/_lab/faults/memory-leak", headers=lab.auth)
    assert response.status_code == 200
    assert response.json() == {"slug": "memory-leak", "active": False, "was_active": True}
    assert lab.variant_here("memory-leak") == "fixed"
    assert related_on_a_product_page(lab) == 20
    again = lab.client.delete("/_lab/faults/memory-leak", headers=lab.auth)
    assert again.json() == {"slug": "memory-leak", "active": False, "was_active": False}


def test_reset_turns_everything_off(lab: Lab) -> None:
    lab.enable("memory-leak")
    lab.enable("blocking-call")
    response = lab.client.post("/_lab/reset", headers=lab.auth)
    assert response.status_code == 200
    assert response.json() == {"reset": ["blocking-call", "memory-leak"], "env": "test"}
    assert {s: e["variant_here"] for s, e in lab.listing().items()} == dict.fromkeys(SLUGS, "fixed")
    assert lab.client.post("/_lab/reset", headers=lab.auth).json()["reset"] == []


@pytest.mark.parametrize("slug", TOGGLES)
def test_every_toggle_switches_its_variant(lab: Lab, slug: str) -> None:
    with lab.faulty(slug):  # asserts the listing's variant_here on the way in and out
        assert set(active_in_store(lab)) == {slug}
    assert active_in_store(lab) == {}


# --- production --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def production_lab(pristine_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("production-lab")
    settings = lab_settings(
        home,
        copy_db(pristine_db, home / "shop.sqlite"),
        lab_env="production",
        cursor_secret=SecretStr("s3cret-from-the-vault"),
    )
    with open_lab(settings) as lab:
        yield lab


@pytest.mark.parametrize("slug", [*SLUGS, "memory-leek"])
def test_production_refuses_every_toggle(production_lab: Lab, slug: str) -> None:
    lab = production_lab
    for method in ("PUT", "DELETE"):
        response = lab.client.request(method, f"/_lab/faults/{slug}", headers=lab.auth)
        assert response.status_code == 403
        assert error_of(response)["message"] == "faults cannot be toggled when LAB_ENV=production"
    assert active_in_store(lab) == {}


def test_production_still_needs_the_token(production_lab: Lab) -> None:
    assert production_lab.client.put("/_lab/faults/memory-leak").status_code == 401
    wrong = production_lab.client.put(
        "/_lab/faults/memory-leak", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403
    assert error_of(wrong)["message"] == "wrong lab admin token"


def test_production_ignores_a_hand_written_toggle_file(production_lab: Lab) -> None:
    lab = production_lab
    lab.state_file.parent.mkdir(parents=True, exist_ok=True)
    lab.state_file.write_text('{"active": {"memory-leak": {"params": {"related": 3}}}}')
    try:
        assert lab.variant_here("memory-leak") == "fixed"
        assert related_on_a_product_page(lab) == 20  # not 3: the file was never read
    finally:
        lab.state_file.unlink()


def test_production_allows_reset(production_lab: Lab) -> None:
    response = production_lab.client.post("/_lab/reset", headers=production_lab.auth)
    assert response.status_code == 200
    assert response.json() == {"reset": [], "env": "production"}
    listing = production_lab.client.get("/_lab/faults", headers=production_lab.auth)
    assert listing.status_code == 200


# --- not mounted unless the lab enables it -------------------------------------------------


@pytest.fixture(scope="module")
def lab_without_admin(pristine_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("no-admin-lab")
    database = copy_db(pristine_db, home / "shop.sqlite")
    with open_lab(lab_settings(home, database, lab_admin_enabled=False)) as lab:
        yield lab


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_the_admin_api_is_absent_unless_enabled(
    lab_without_admin: Lab, method: str, path: str
) -> None:
    lab = lab_without_admin
    response = lab.client.request(method, path, headers=lab.auth)
    assert response.status_code == 404
    assert error_of(response)["message"] == "Not Found"
    assert lab.client.get("/healthz").status_code == 200
