"""One error shape for everything the API answers: {"message", "code", "extra"}."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def shape(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"message", "code", "extra"}, body
    assert body["message"]
    return response.status_code, body["code"]


def test_each_kind_of_refusal_has_the_one_shape(acme, agent_api, supervisor_api):
    assert shape(agent_api.get("/api/v1/no-such-thing/")) == (404, "not_found")
    assert shape(agent_api.get("/api/v1/tickets/999/")) == (404, "not_found")
    assert shape(agent_api.put("/api/v1/tickets/", {}, format="json")) == (
        405,
        "method_not_allowed",
    )
    invalid = agent_api.post("/api/v1/tickets/", {"subject": ""}, format="json")
    assert shape(invalid) == (400, "invalid")
    assert set(invalid.json()["extra"]["fields"]) == {"customer", "subject"}
    assert shape(
        agent_api.post("/api/v1/tickets/", "not json", content_type="application/json")
    ) == (400, "bad_input")
    assert shape(agent_api.get("/api/v1/metrics/agents/")) == (403, "permission_denied")
    # A business rule's refusal keeps its own code: a closed ticket cannot become new again.
    supervisor_api.patch(f"/api/v1/tickets/{acme.ticket}/", {"status": "closed"}, format="json")
    refused = supervisor_api.patch(
        f"/api/v1/tickets/{acme.ticket}/", {"status": "new"}, format="json"
    )
    assert shape(refused) == (409, "invalid_transition")


def test_a_415_names_the_media_type(agent_api):
    response = agent_api.post("/api/v1/tickets/", b"x", content_type="text/csv")
    assert shape(response) == (415, "unsupported_media_type")
