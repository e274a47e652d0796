"""The generated API description and its two viewers."""

from __future__ import annotations

import pytest

from tests.app.helpers import Lab

pytestmark = pytest.mark.unit


def test_openapi_describes_the_public_routes_only(lab: Lab) -> None:
    response = lab.client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"] == {"title": "Lab shop", "version": "0.1.0"}
    paths = set(schema["paths"])
    assert {"/products/{product_id}", "/orders", "/uploads/{name}"} <= paths
    assert not [p for p in paths if p.startswith("/_lab")]  # include_in_schema=False
    assert "/metrics" not in paths
    assert set(schema["paths"]["/uploads/{name}"]) == {"put", "head", "patch", "delete"}


@pytest.mark.parametrize(
    ("path", "needle"),
    [("/docs", "swagger-ui"), ("/redoc", "redoc"), ("/docs/oauth2-redirect", "oauth2")],
)
def test_the_docs_pages_render(lab: Lab, path: str, needle: str) -> None:
    response = lab.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert needle in response.text.lower()
