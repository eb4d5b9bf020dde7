"""The OpenAPI description: valid with no warning, served at /api/schema/, read by a docs page
that loads nothing from elsewhere; and schemathesis, driving every operation it describes with
generated input, finds no 5xx."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from helpdesk.models import ApiKey
from tests.api.conftest import build


@pytest.mark.django_db
def test_the_schema_is_valid_without_a_single_warning(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/v1/tickets/{number}/messages/" in text
    assert "/api/v1/shop/{merchant}/orders/" in text


@pytest.mark.django_db
def test_the_schema_and_the_docs_page_are_served_from_here(client, agent_li):
    schema = client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Helpdesk API"
    assert "ApiKey" in schema.json()["components"]["securitySchemes"]

    client.force_login(agent_li)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert any("api-docs" in src for src in scripts)
    assert all(src.startswith("/static/") for src in scripts)  # nothing from a CDN


# Bounded so the run stays under a minute on a small machine (about 400 requests).
MAX_EXAMPLES = 6


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error(settings, tenant_acme, tenant_globex, admin_zhao):
    """Every operation, with an admin key of acme (every scope), ``MAX_EXAMPLES`` generated
    requests each (positive and negative input); each answer must be below 500 and JSON."""
    settings.HELPDESK_API_RATE = "100000/m"
    settings.HELPDESK_API_ADDRESS_RATE = "100000/m"
    settings.HELPDESK_INBOUND_RATE = "100000/m"
    build(tenant_acme, email="li.wei@example.cn", order="A-1001", subject="吸油烟机噪音很大")
    build(tenant_globex, email="li.wei@example.cn", order="G-2002", subject="Tent pole")
    _, token = ApiKey.issue(
        tenant=tenant_acme, acting_user=admin_zhao, name="fuzz", scopes=["read", "write", "admin"]
    )
    app = get_wsgi_application()
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)
    headers = {"Authorization": f"Bearer {token}"}
    server_errors: list[str] = []
    statuses: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25

    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case) -> None:
                response = case.call(headers=headers)
                statuses.append(response.status_code)
                if response.status_code >= 500:
                    server_errors.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:300]}"
                    )

            exercise()

    assert server_errors == []
    # The key was believed: the generated requests reached the views.
    assert statuses.count(401) == 0
    assert sum(200 <= status < 300 for status in statuses) > len(operations)
    print(f"schemathesis: {len(statuses)} requests, {len(operations)} operations")
