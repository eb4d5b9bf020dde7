"""Ids no database column can hold are a 4xx like any unknown id, never a server error."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

HUGE = 10**20


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/customers/{HUGE}/",
        f"/api/v1/tickets/{HUGE}/",
        f"/api/v1/tickets/{HUGE}/messages/",
        f"/api/v1/webhooks/{HUGE}/",
        f"/api/v1/tickets/?customer={HUGE}",
        f"/api/v1/tickets/?assignee={HUGE}",
    ],
)
def test_a_huge_id_in_a_path_or_filter_is_a_4xx(acme, admin_api, path):
    assert 400 <= admin_api.get(path).status_code < 500


def test_a_huge_id_in_a_body_is_a_4xx(acme, admin_api):
    answers = [
        admin_api.post("/api/v1/tickets/", {"customer": HUGE, "subject": "x"}, format="json"),
        admin_api.patch(
            f"/api/v1/tickets/{acme.ticket}/", {"assignee": HUGE, "group": HUGE}, format="json"
        ),
        admin_api.post(f"/api/v1/escalations/{HUGE}/resolve/", {"resolution": "x"}, format="json"),
        admin_api.post(
            "/api/v1/orders/",
            {"number": "Z-1", "customer": {"id": HUGE}, "currency": "CNY"},
            format="json",
        ),
    ]
    assert [400 <= answer.status_code < 500 for answer in answers] == [True] * 4
