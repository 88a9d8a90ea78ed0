"""The OpenAPI schema is a contract: docs/openapi.yaml is committed, and any change to the API
shows up here until the file is regenerated (`make schema`) and the diff reviewed."""

from __future__ import annotations

import difflib
import io
from pathlib import Path

import pytest
from django.core.management import call_command

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


@pytest.mark.django_db
def test_generated_schema_matches_the_committed_contract():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    generated = out.getvalue()
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    if generated != committed:
        diff = "".join(
            difflib.unified_diff(committed.splitlines(True), generated.splitlines(True), "committed", "generated", n=2)
        )
        pytest.fail(f"The API changed; review and run `make schema` to update docs/openapi.yaml:\n{diff[:6000]}")


@pytest.mark.django_db
def test_docs_page_is_served_from_the_sidecar_without_a_cdn(anon_client):
    response = anon_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert "//unpkg" not in html
