"""/products: the list, pages and cursors, search, the product page, availability."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from target_app.seed import CATEGORIES
from tests.app.helpers import ROWS, Lab, error_of

pytestmark = pytest.mark.unit


def _category(product_id: int) -> str:
    return CATEGORIES[product_id % len(CATEGORIES)]  # how target_app/seed.py assigns them


def _ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


# --- GET /products --------------------------------------------------------------


def test_list_is_keyset_paginated_by_id(lab: Lab) -> None:
    first = lab.client.get("/products")
    assert first.status_code == 200
    body = first.json()
    assert _ids(body["items"]) == list(range(1, 21))
    assert body["next_after_id"] == 20
    assert body["items"][0] == {
        "id": 1,
        "sku": "SKU-00000001",
        "name": "Garden item 1",
        "category": "garden",
        "price": body["items"][0]["price"],
        "in_stock": body["items"][0]["in_stock"],
    }
    assert Decimal(body["items"][0]["price"]) > 0
    following = lab.client.get("/products", params={"after_id": 20, "limit": 5}).json()
    assert _ids(following["items"]) == [21, 22, 23, 24, 25]
    assert following["next_after_id"] == 25


def test_list_filters_by_category(lab: Lab) -> None:
    body = lab.client.get("/products", params={"category": "books", "limit": 500}).json()
    assert len(body["items"]) == ROWS // len(CATEGORIES)
    assert {item["category"] for item in body["items"]} == {"books"}
    assert _ids(body["items"]) == sorted(_ids(body["items"]))


def test_list_past_the_end_is_empty(lab: Lab) -> None:
    body = lab.client.get("/products", params={"after_id": ROWS}).json()
    assert body == {"items": [], "next_after_id": None}
    unknown = lab.client.get("/products", params={"category": "no-such-category"}).json()
    assert unknown == {"items": [], "next_after_id": None}


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"after_id": -1}, {"limit": "many"}]
)
def test_list_refuses_bad_paging(lab: Lab, params: dict[str, Any]) -> None:
    response = lab.client.get("/products", params=params)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["query", next(iter(params))]


# --- GET /products/pages, /products/pages/bookmark -------------------------------


def test_pages_follow_the_signed_cursor(lab: Lab) -> None:
    first = lab.client.get("/products/pages")
    assert first.status_code == 200
    body = first.json()
    assert [item["id"] for item in body["items"]] == list(range(1, 21))
    assert set(body["items"][0]) == {"id", "sku", "name", "price"}
    second = lab.client.get("/products/pages", params={"cursor": body["next_cursor"]}).json()
    assert [item["id"] for item in second["items"]] == list(range(21, 41))


def test_a_bookmark_resumes_after_a_product_and_the_last_page_ends(lab: Lab) -> None:
    bookmark = lab.client.get("/products/pages/bookmark", params={"after_id": ROWS - 10})
    assert bookmark.status_code == 200
    cursor = bookmark.json()["cursor"]
    tail = lab.client.get("/products/pages", params={"cursor": cursor}).json()
    assert [item["id"] for item in tail["items"]] == list(range(ROWS - 9, ROWS + 1))
    assert tail["next_cursor"] is None  # fewer than a page: nothing follows


@pytest.mark.parametrize("cursor", ["not-a-cursor", "bm90LWpzb24.0123456789abcdef01234567"])
def test_a_cursor_the_api_did_not_issue_is_refused(lab: Lab, cursor: str) -> None:
    response = lab.client.get("/products/pages", params={"cursor": cursor})
    assert response.status_code == 400
    assert error_of(response)["message"] == "cursor is not one this API issued (bad signature)"


def test_a_tampered_cursor_is_refused(lab: Lab) -> None:
    """A client that edits the position in a cursor it was given (`payload.signature`)."""
    issued = lab.client.get("/products/pages/bookmark", params={"after_id": 20}).json()["cursor"]
    payload, _, signature = issued.partition(".")
    other = lab.client.get("/products/pages/bookmark", params={"after_id": 300}).json()["cursor"]
    forged = f"{other.partition('.')[0]}.{signature}"
    assert forged != issued
    response = lab.client.get("/products/pages", params={"cursor": forged})
    assert response.status_code == 400
    assert "bad signature" in error_of(response)["message"]
    # The untouched one still works.
    page = lab.client.get("/products/pages", params={"cursor": f"{payload}.{signature}"})
    assert [item["id"] for item in page.json()["items"]][:1] == [21]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/products/pages", {"page": 0}),
        ("/products/pages", {"page": 1_000_001}),
        ("/products/pages", {"cursor": "c" * 201}),
        ("/products/pages/bookmark", {}),
        ("/products/pages/bookmark", {"after_id": -1}),
    ],
)
def test_pages_refuse_bad_input(lab: Lab, path: str, params: dict[str, Any]) -> None:
    assert lab.client.get(path, params=params).status_code == 422


# --- GET /products/search ---------------------------------------------------------


def test_search_finds_the_exact_name(lab: Lab) -> None:
    response = lab.client.get("/products/search", params={"name": "Toys item 3"})
    assert response.status_code == 200
    (item,) = response.json()["items"]
    assert item["id"] == 3
    assert item["sku"] == "SKU-00000003"
    assert set(item) == {"id", "sku", "name", "price"}
    none = lab.client.get("/products/search", params={"name": "Toys item"}).json()
    assert none == {"items": []}


@pytest.mark.parametrize("params", [{}, {"name": ""}, {"name": "n" * 201}])
def test_search_needs_a_name(lab: Lab, params: dict[str, str]) -> None:
    response = lab.client.get("/products/search", params=params)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["query", "name"]


# --- GET /products/{product_id} -------------------------------------------------


def test_product_page_is_personalised_and_lists_related_products(lab: Lab) -> None:
    session = f"s-{uuid.uuid4().hex[:12]}"
    response = lab.client.get("/products/7", headers={"X-Session-Id": session})
    assert response.status_code == 200
    page = response.json()
    assert page["id"] == 7
    assert page["sku"] == "SKU-00000007"
    assert page["category"] == _category(7)
    assert page["currency"] == "USD"
    assert page["personalised_for"] == session
    assert page["description"].startswith("A fine ")
    related = page["related"]
    assert len(related) == 20  # memory-leak's `related` default
    assert {p["category"] for p in related} == {_category(7)}
    assert 7 not in _ids(related)
    assert _ids(related) == sorted(_ids(related))
    # The same key again comes from the page cache: byte for byte the same page.
    again = lab.client.get("/products/7", headers={"X-Session-Id": session})
    assert again.content == response.content


def test_product_page_converts_the_currency(lab: Lab) -> None:
    session = {"X-Session-Id": f"s-{uuid.uuid4().hex[:12]}"}
    usd = lab.client.get("/products/11", headers=session).json()
    eur = lab.client.get("/products/11", params={"currency": "EUR"}, headers=session).json()
    assert eur["currency"] == "EUR"
    expected = (Decimal(usd["price"]) * Decimal("0.92")).quantize(Decimal("0.01"))
    assert Decimal(eur["price"]) == expected
    assert _ids(eur["related"]) == _ids(usd["related"])


def test_product_page_anonymous_by_default(lab: Lab) -> None:
    page = lab.client.get("/products/5").json()
    assert page["personalised_for"] == "anonymous"


def test_missing_product_is_404(lab: Lab) -> None:
    response = lab.client.get(f"/products/{ROWS + 1}")
    assert response.status_code == 404
    assert error_of(response)["message"] == f"no product {ROWS + 1}"


@pytest.mark.parametrize(
    ("path", "headers", "where"),
    [
        ("/products/abc", {}, ["path", "product_id"]),
        ("/products/1?currency=JPY", {}, ["query", "currency"]),
        ("/products/1", {"X-Session-Id": "s" * 65}, ["header", "x-session-id"]),
    ],
)
def test_product_page_refuses_bad_input(
    lab: Lab, path: str, headers: dict[str, str], where: list[str]
) -> None:
    response = lab.client.get(path, headers=headers)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == where


# --- GET /products/{product_id}/availability ----------------------------------


def test_availability_needs_the_upstream_api(lab: Lab) -> None:
    """Without UPSTREAM_URL the route says what to start; the real call is tested
    against the lab's upstream in tests/scenarios (bandwidth-limit)."""
    response = lab.client.get("/products/1/availability")
    assert response.status_code == 503
    assert error_of(response)["message"] == (
        "this route needs the upstream API and UPSTREAM_URL is not set; start the lab's "
        "services with `make up`"
    )
