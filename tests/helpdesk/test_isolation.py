"""A leak between merchants is the worst bug: these tests try to cause one."""

from __future__ import annotations

import contextlib

import pytest
from django.apps import apps
from django.db import connection

from helpdesk import rls, tenancy
from helpdesk.permissions import SYSTEM
from helpdesk.tenancy import TenantNotActive, TenantOwned
from tests.conftest import login
from tests.factories import CustomerFactory, OrderFactory
from tickets import services
from tickets.models import AuditEvent, Customer, Message, Order, Ticket

pytestmark = pytest.mark.django_db


def make_world(tenant, email: str, subject: str, order_number: str = "1") -> Ticket:
    with tenancy.activate(tenant):
        customer = CustomerFactory(name=f"{tenant.slug} customer", email=email)
        order = OrderFactory(customer=customer, number=f"{tenant.slug.upper()}-{order_number}")
        ticket = services.open_ticket(
            acting_agent=SYSTEM, customer=customer, subject=subject, channel="email", order=order
        )
        Message.objects.create(
            ticket=ticket,
            direction="inbound",
            channel="email",
            author_customer=customer,
            body_text=f"secret of {tenant.slug}",
            external_id=f"{tenant.slug}-{order_number}@mail",
        )
        return ticket


@pytest.fixture
def two_merchants(tenant_acme, tenant_globex):
    acme_ticket = make_world(tenant_acme, "wei@acme-customer.cn", "Acme problem")
    globex_ticket = make_world(tenant_globex, "wei@acme-customer.cn", "Globex problem")
    return acme_ticket, globex_ticket


def test_a_query_with_no_tenant_raises():
    for model in (Customer, Order, Ticket, Message, AuditEvent):
        with pytest.raises(TenantNotActive):
            list(model.objects.all())


def test_saving_into_another_tenant_is_refused(two_merchants, tenant_acme, tenant_globex):
    _, globex_ticket = two_merchants
    with tenancy.activate(tenant_acme), pytest.raises(TenantNotActive):
        globex_ticket.subject = "hijacked"
        globex_ticket.save()


def test_orm_sees_only_the_active_tenant(two_merchants, tenant_acme, tenant_globex):
    acme_ticket, globex_ticket = two_merchants
    with tenancy.activate(tenant_acme):
        assert list(Ticket.objects.values_list("subject", flat=True)) == ["Acme problem"]
        assert list(Message.objects.values_list("body_text", flat=True)) == ["secret of acme"]
        assert list(Order.objects.values_list("number", flat=True)) == ["ACME-1"]
        # The same email is a different customer at each merchant.
        assert Customer.objects.filter(identities__value="wei@acme-customer.cn").count() == 1
        assert not Ticket.objects.filter(pk=globex_ticket.pk).exists()
        assert Ticket.objects.filter(pk=globex_ticket.pk).update(subject="x") == 0
        assert Customer.objects.filter(pk=globex_ticket.customer_id).delete()[0] == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_the_app_role_cannot_bypass_row_level_security():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_every_tenant_owned_table_has_forced_row_level_security():
    tables = [t for t, _ in rls.tenant_owned_tables()]
    assert len(tables) >= 10
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) "
            "AND relrowsecurity AND relforcerowsecurity",
            [tables],
        )
        protected = {row[0] for row in cursor.fetchall()}
    assert protected == set(tables)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_raw_sql_on_every_tenant_table_returns_only_the_active_tenants_rows(
    two_merchants, tenant_acme, tenant_globex
):
    tenant_models = [m for m in apps.get_models() if issubclass(m, TenantOwned)]
    with tenancy.activate(tenant_acme):
        seen_rows = 0
        for model in tenant_models:
            with connection.cursor() as cursor:
                cursor.execute(f'SELECT DISTINCT tenant_id FROM "{model._meta.db_table}"')
                tenants = {row[0] for row in cursor.fetchall()}
            assert tenants <= {tenant_acme.pk}, model
            seen_rows += len(tenants)
        # The check above saw real rows, not empty tables.
        assert seen_rows >= 6
        with connection.cursor() as cursor:
            cursor.execute("SELECT subject FROM tickets_ticket")
            assert [r[0] for r in cursor.fetchall()] == ["Acme problem"]
    # No tenant at all: raw SQL sees nothing.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tickets_ticket")
        assert cursor.fetchone()[0] == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_row_level_security_stops_a_query_that_forgot_the_tenant(two_merchants, tenant_acme):
    """all_tenants skips the ORM filter; the database still refuses other merchants' rows."""
    with tenancy.activate(tenant_acme):
        assert list(Ticket.all_tenants.values_list("subject", flat=True)) == ["Acme problem"]
        assert Ticket.all_tenants.update(subject="overwritten") == 1
    with tenancy.activate(two_merchants[1].tenant):
        assert Ticket.objects.get().subject == "Globex problem"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_row_level_security_refuses_writing_a_row_for_another_tenant(two_merchants, tenant_acme):
    from django.db import DatabaseError, transaction

    _, globex_ticket = two_merchants
    with (
        tenancy.activate(tenant_acme),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO tickets_tag (tenant_id, name) VALUES (%s, 'planted')",
            [globex_ticket.tenant_id],
        )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_audit_log_cannot_be_rewritten_even_with_raw_sql(two_merchants, tenant_acme):
    from django.db import DatabaseError, transaction

    with tenancy.activate(tenant_acme):
        before = AuditEvent.objects.count()
        assert before >= 1
        for statement in (
            "UPDATE tickets_auditevent SET action = 'forged'",
            "DELETE FROM tickets_auditevent",
        ):
            # The app role has no UPDATE or DELETE on it (test_db_roles); were it the tables'
            # owner, the policies would still match no row.
            with (
                contextlib.suppress(DatabaseError),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
                assert cursor.rowcount == 0
        assert AuditEvent.objects.count() == before
        assert not AuditEvent.objects.filter(action="forged").exists()


def test_agent_pages_never_show_another_merchants_ticket(two_merchants, agent_li, globex_agent_li):
    acme_ticket, globex_ticket = two_merchants
    li = login(agent_li)
    listing = li.get("/tickets/?status=all")
    assert "Acme problem" in listing.content.decode()
    assert "Globex problem" not in listing.content.decode()
    # Ticket numbers are per merchant, so both have #1: Li sees only Acme's.
    detail = li.get(f"/tickets/{acme_ticket.number}/")
    assert "secret of acme" in detail.content.decode()
    assert "secret of globex" not in detail.content.decode()
    assert li.get("/tickets/999/").status_code == 404


def test_one_person_in_two_merchants_sees_each_merchants_tickets_only_there_in_its_role(
    two_merchants, li_in_two_merchants
):
    li = login(li_in_two_merchants)
    at_acme = li.get("/tickets/?status=all").content.decode()
    assert "Acme problem" in at_acme and "Globex problem" not in at_acme
    assert 'href="/supervisor/"' not in at_acme  # an agent at Acme

    assert li.post("/switch-tenant/", {"tenant": "globex"}).status_code == 302
    at_globex = li.get("/tickets/?status=all").content.decode()
    assert "Globex problem" in at_globex and "Acme problem" not in at_globex
    assert 'href="/supervisor/"' in at_globex  # a supervisor at Globex
    # Globex's ticket #1 is Globex's now; Acme's #1 is out of reach while acting for Globex.
    detail = li.get(f"/tickets/{two_merchants[1].number}/").content.decode()
    assert "secret of globex" in detail and "secret of acme" not in detail


def test_agent_cannot_change_another_merchants_ticket(two_merchants, tenant_globex, agent_li):
    second = make_world(tenant_globex, "someone@else.com", "Globex second problem", "2")
    assert second.number == 2  # Acme has no ticket #2
    li = login(agent_li)
    assert li.post("/tickets/2/status/", {"status": "solved"}).status_code == 404
    assert li.post("/tickets/2/note/", {"text": "planted"}).status_code == 404
    with tenancy.activate(tenant_globex):
        second.refresh_from_db()
        assert second.status == "new"
        assert not Message.objects.filter(body_text="planted").exists()


def test_agent_cannot_switch_into_a_merchant_they_do_not_belong_to(
    two_merchants, agent_li, tenant_globex
):
    li = login(agent_li)
    assert li.post("/switch-tenant/", {"tenant": "globex"}).status_code == 404
    assert "Globex problem" not in li.get("/tickets/?status=all").content.decode()


def test_agent_cannot_download_another_merchants_attachment(two_merchants, agent_li, tenant_globex):
    from django.core.files.base import ContentFile

    from tickets.models import Attachment

    with tenancy.activate(tenant_globex):
        message = Message.objects.get()
        attachment = Attachment(
            message=message, filename="invoice.pdf", content_type="application/pdf", size=5
        )
        attachment.file.save("invoice.pdf", ContentFile(b"%PDF-"), save=False)
        attachment.save()
    assert login(agent_li).get(f"/tickets/attachments/{attachment.pk}/").status_code == 404


def test_merchant_staff_with_ticket_permissions_get_nothing_from_the_admin(two_merchants, agent_li):
    from django.contrib.auth.models import Permission

    agent_li.is_staff = True
    agent_li.save()
    agent_li.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_ticket", "change_ticket"])
    )
    admin = login(agent_li)
    for url in ["/admin/tickets/ticket/", f"/admin/tickets/ticket/{two_merchants[0].pk}/change/"]:
        response = admin.get(url, follow=True)
        page = response.content.decode()
        assert response.redirect_chain and "/admin/login/" in response.redirect_chain[-1][0]
        assert "Acme problem" not in page and "Globex problem" not in page


def test_merchant_staff_cannot_reach_platform_tables_in_the_admin(two_merchants, agent_li):
    from django.contrib.auth.models import Permission

    agent_li.is_staff = True
    agent_li.save()
    agent_li.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["add_membership", "change_membership", "view_tenant"]
        )
    )
    from helpdesk.models import Membership

    memberships = Membership.objects.count()
    admin = login(agent_li)
    for url in ["/admin/helpdesk/membership/", "/admin/helpdesk/tenant/"]:
        response = admin.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert admin.post("/admin/helpdesk/membership/add/", {"role": "owner"}).status_code == 302
    assert Membership.objects.count() == memberships


def test_a_missing_attachment_file_is_a_404_not_a_crash(two_merchants, agent_li, tenant_acme):
    from django.core.files.base import ContentFile

    from tickets.models import Attachment

    with tenancy.activate(tenant_acme):
        attachment = Attachment(
            message=Message.objects.get(), filename="a.pdf", content_type="application/pdf", size=5
        )
        attachment.file.save("a.pdf", ContentFile(b"%PDF-"), save=False)
        attachment.save()
        attachment.file.storage.delete(attachment.file.name)
    assert login(agent_li).get(f"/tickets/attachments/{attachment.pk}/").status_code == 404


def test_a_platform_operator_switches_merchant_from_the_admin(two_merchants):
    from django.contrib.auth import get_user_model

    operator = get_user_model().objects.create_superuser("operator", "op@example.com", "pw-1234567")
    client = login(operator)
    page = client.get("/admin/tickets/ticket/").content.decode()
    assert "Acting for merchant" in page
    assert "Acme problem" in page and "Globex problem" not in page
    switched = client.post(
        "/switch-tenant/", {"tenant": "globex", "next": "/admin/tickets/ticket/"}, follow=True
    ).content.decode()
    assert "Globex problem" in switched and "Acme problem" not in switched
