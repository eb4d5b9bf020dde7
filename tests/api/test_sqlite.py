"""`make run` (SQLite, no Redis, Celery inline) serves the API too: a key lists and opens
tickets in cursor pages, a repeated Idempotency-Key gets its first answer, a signed order
event is applied once."""

from __future__ import annotations

from pathlib import Path

from tests.make_run import make_run_manage

SQLITE_API = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from helpdesk import signing, tenancy
from helpdesk.models import ApiKey, Membership, Role, Tenant
from tickets.api_order_feed import order_feed
from tickets.models import Customer, Order, Ticket

tenant = Tenant.objects.create(name="Shop", slug="shop")
boss = get_user_model().objects.create(username="boss")
Membership.objects.create(tenant=tenant, user=boss, role=Role.OWNER)
_, token = ApiKey.issue(tenant=tenant, acting_user=boss, name="k", scopes=["read", "write"])
with tenancy.activate(tenant):
    customer = Customer.objects.create(name="Li")
    secret = order_feed().secret
api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
answers = []
for n in range(3):
    body = {"customer": customer.pk, "subject": f"T{n}"}
    answers.append(api.post("/api/v1/tickets/", body, content_type="application/json",
                            HTTP_IDEMPOTENCY_KEY=f"k{n}").status_code)
again = api.post("/api/v1/tickets/", {"customer": customer.pk, "subject": "T0"},
                 content_type="application/json", HTTP_IDEMPOTENCY_KEY="k0")
answers.append(again.status_code)
first = api.get("/api/v1/tickets/?page_size=2&ordering=number").json()
second = api.get(first["next"]).json()
pages = [[t["number"] for t in first["results"]], [t["number"] for t in second["results"]]]
event = json.dumps({"id": "e1", "order": {"number": "N1", "customer": {"id": customer.pk},
                    "currency": "CNY"}}).encode()
fed = [Client().post("/api/v1/shop/shop/orders/", event, content_type="application/json",
                     headers=signing.sign(secret, event)).json()["status"] for _ in range(2)]
with tenancy.activate(tenant):
    print(answers, pages, fed, Ticket.objects.count(), Order.objects.count())
"""


def test_make_run_on_sqlite_serves_the_api(tmp_path: Path):
    manage = make_run_manage(tmp_path)

    manage("migrate", "-v0")
    out = manage("shell", "-c", SQLITE_API).strip().splitlines()[-1]
    assert out == "[201, 201, 201, 201] [[1, 2], [3]] ['applied', 'duplicate'] 3 1"
