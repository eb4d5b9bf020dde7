"""Every endpoint of /api/v1/ answers 404 for another merchant's ids, 401 without a valid key,
and 403 for a key without the scope (or a person without the role) it needs."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from helpdesk import tenancy
from helpdesk.models import WebhookDelivery
from tests.api.conftest import key_client

pytestmark = pytest.mark.django_db

# (method, path with {customer} {order} {ticket} {escalation} {subscription} {delivery}, body)
BY_ID = [
    ("get", "/api/v1/customers/{customer}/", None),
    ("post", "/api/v1/customers/{customer}/identities/", {"kind": "email", "value": "x@y.cn"}),
    ("get", "/api/v1/orders/{order}/", None),
    ("get", "/api/v1/tickets/{ticket}/", None),
    ("patch", "/api/v1/tickets/{ticket}/", {"priority": "high"}),
    ("get", "/api/v1/tickets/{ticket}/messages/", None),
    ("post", "/api/v1/tickets/{ticket}/messages/", {"kind": "note", "text": "hi"}),
    ("get", "/api/v1/tickets/{ticket}/remedies/", None),
    ("post", "/api/v1/tickets/{ticket}/remedies/", {"kind": "gift", "item": "mug"}),
    ("get", "/api/v1/tickets/{ticket}/allowance/", None),
    ("post", "/api/v1/tickets/{ticket}/escalations/", {"reason": "help"}),
    ("post", "/api/v1/tickets/{ticket}/merge/", {"into": 1}),  # its own number: refused, 400
    ("post", "/api/v1/customers/{customer}/merge/", {"into": 0}),
    ("post", "/api/v1/escalations/{escalation}/resolve/", {"resolution": "done"}),
    ("get", "/api/v1/webhooks/{subscription}/", None),
    ("patch", "/api/v1/webhooks/{subscription}/", {"is_active": False}),
    ("delete", "/api/v1/webhooks/{subscription}/", None),
    ("get", "/api/v1/webhooks/{subscription}/deliveries/", None),
    ("post", "/api/v1/webhook-deliveries/{delivery}/resend/", None),
]
LISTS = [
    ("get", "/api/v1/customers/", None),
    ("post", "/api/v1/customers/", {"identities": [{"kind": "email", "value": "a@b.cn"}]}),
    ("get", "/api/v1/orders/", None),
    ("post", "/api/v1/orders/", {"number": "N1"}),
    ("get", "/api/v1/tickets/", None),
    ("post", "/api/v1/tickets/", {"customer": 1, "subject": "x"}),
    ("get", "/api/v1/macros/", None),
    ("get", "/api/v1/approvals/", None),
    ("get", "/api/v1/escalations/", None),
    ("get", "/api/v1/metrics/escalation-rate/", None),
    ("get", "/api/v1/metrics/agents/", None),
    ("get", "/api/v1/metrics/remedy-spend/", None),
    ("get", "/api/v1/metrics/root-causes/", None),
    ("get", "/api/v1/webhooks/", None),
    ("post", "/api/v1/webhooks/", {"url": "https://x.example.com/", "events": ["ticket.created"]}),
]
ADMIN_PATHS = ("/api/v1/webhooks/", "/api/v1/webhook-deliveries/")


@pytest.fixture
def ids(globex, tenant_globex) -> dict[str, object]:
    with tenancy.activate(tenant_globex):
        delivery = WebhookDelivery.objects.create(
            url="https://hooks.example.com/", event="ticket.created", body=b"{}"
        )
    return {**vars(globex), "delivery": delivery.pk}


def call(client: APIClient, method: str, path: str, body: object):
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize(("method", "path", "body"), BY_ID)
def test_another_merchants_id_is_404(acme, ids, admin_api, method, path, body):
    response = call(admin_api, method, path.format(**ids), body)

    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "body"), [entry for entry in BY_ID if "{delivery}" not in entry[1]]
)
def test_the_same_endpoint_answers_for_the_merchants_own_id(acme, admin_api, method, path, body):
    own = vars(acme)
    response = call(admin_api, method, path.format(**own), body)

    assert response.status_code < 400 or response.json()["code"] not in ("not_found",), (
        response.content
    )


@pytest.mark.parametrize(("method", "path", "body"), BY_ID + LISTS)
def test_no_key_or_a_wrong_key_is_401(acme, ids, method, path, body):
    anonymous = APIClient()
    response = call(anonymous, method, path.format(**ids), body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"

    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer hd_nothere_secret")
    response = call(wrong, method, path.format(**ids), body)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize(("method", "path", "body"), BY_ID + LISTS)
def test_a_key_without_the_scope_is_403(acme, tenant_acme, admin_zhao, method, path, body):
    own = {**vars(acme), "delivery": 1}
    if method == "get":
        lacking, needed = ("write", "admin"), "read"
    else:
        lacking, needed = ("read", "admin"), "write"
    client = key_client(tenant_acme, admin_zhao, scopes=lacking)

    response = call(client, method, path.format(**own), body)

    assert response.status_code == 403
    assert response.json() == {
        "message": f"This API key lacks the {needed} scope",
        "code": "permission_denied",
        "extra": {"scope": needed},
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [entry for entry in BY_ID + LISTS if entry[1].startswith(ADMIN_PATHS)],
)
def test_merchant_settings_need_the_admin_scope_and_an_admin(
    acme, tenant_acme, admin_zhao, agent_li, method, path, body
):
    own = {**vars(acme), "delivery": 1}
    without_admin = key_client(tenant_acme, admin_zhao, scopes=("read", "write"))
    response = call(without_admin, method, path.format(**own), body)
    assert response.status_code == 403
    assert response.json()["extra"] == {"scope": "admin"}

    agent_with_admin_scope = key_client(tenant_acme, agent_li, scopes=("read", "write", "admin"))
    response = call(agent_with_admin_scope, method, path.format(**own), body)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "role" in response.json()["message"]


def test_filters_choose_only_among_the_merchants_own_rows(acme, globex, agent_api, admin_api):
    own = agent_api.get("/api/v1/tickets/", {"customer": acme.customer})
    assert [t["number"] for t in own.json()["results"]] == [acme.ticket]

    other = admin_api.get("/api/v1/tickets/", {"customer": globex.customer})
    assert other.status_code == 400
    assert other.json()["code"] == "invalid"
    assert "customer" in other.json()["extra"]["fields"]
    orders = admin_api.get("/api/v1/orders/", {"customer": globex.customer})
    assert orders.status_code == 400


def test_a_customer_with_the_same_email_at_another_merchant_is_not_found(acme, globex, admin_api):
    found = admin_api.get("/api/v1/customers/", {"email": "li.wei@example.cn"}).json()["results"]
    assert [customer["id"] for customer in found] == [acme.customer]
