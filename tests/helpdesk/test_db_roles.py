"""The app's database role can read and write rows, and nothing more; the tenant never outlives
a transaction, so no connection (pooled or not) carries one merchant into the next request.

The suite runs as the app role (DATABASE_URL) on a database the owner role (DATABASE_MIGRATE_URL)
created and migrated, as in production (tests/conftest.py).
"""

from __future__ import annotations

import asyncio

import psycopg2
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import DatabaseError, connection, transaction

from helpdesk import tenancy
from helpdesk.db.roles import connected_as_owner, owner_login
from helpdesk.permissions import SYSTEM
from tests.conftest import login
from tests.factories import CustomerFactory
from tickets import services
from tickets.models import AuditEvent, Customer, Ticket

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="roles and row-level security are PostgreSQL's"
)
needs_owner_role = pytest.mark.skipif(
    owner_login() is None,
    reason="DATABASE_MIGRATE_URL is not set, so the suite runs as one role (make test sets it)",
)


def refused(sql: str) -> str:
    """Run ``sql`` as the app role; the database's refusal, or '' if it ran."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError as exc:
        return str(exc)
    return ""


def open_ticket(tenant, subject: str) -> Ticket:
    with tenancy.activate(tenant):
        return services.open_ticket(
            acting_agent=SYSTEM, customer=CustomerFactory(), subject=subject, channel="email"
        )


def raw_app_connection():
    """A fresh connection as the app role, autocommit, nothing set: a pooled server session."""
    settings = connection.settings_dict
    raw = psycopg2.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"],
    )
    raw.autocommit = True
    return raw


def session_tenant_setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('app.tenant_id', true), '')")
        return cursor.fetchone()[0]


@needs_owner_role
@pytest.mark.django_db
def test_the_app_role_is_not_the_owner_of_the_tables_it_uses():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        assert cursor.fetchone() == (False, False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
            "AND tableowner = current_user"
        )
        assert cursor.fetchone()[0] == 0


@needs_owner_role
@pytest.mark.django_db
def test_the_app_role_cannot_drop_or_change_a_policy():
    assert "must be owner" in refused("DROP POLICY tenant_isolation ON tickets_ticket")
    assert "must be owner" in refused(
        "CREATE POLICY everything ON tickets_ticket USING (true) WITH CHECK (true)"
    )
    assert "must be owner" in refused(
        "ALTER POLICY tenant_isolation ON tickets_ticket USING (true)"
    )


@needs_owner_role
@pytest.mark.django_db
def test_the_app_role_cannot_switch_off_row_level_security():
    assert "must be owner" in refused("ALTER TABLE tickets_ticket NO FORCE ROW LEVEL SECURITY")
    assert "must be owner" in refused("ALTER TABLE tickets_ticket DISABLE ROW LEVEL SECURITY")
    assert "must be owner" in refused("ALTER TABLE tickets_ticket OWNER TO current_user")


@needs_owner_role
@pytest.mark.django_db
def test_the_app_role_cannot_truncate_drop_or_create_tables(tenant_acme):
    open_ticket(tenant_acme, "survives")
    assert "permission denied" in refused("TRUNCATE tickets_ticket CASCADE")
    assert "must be owner" in refused("DROP TABLE tickets_auditevent")
    assert "permission denied" in refused("CREATE TABLE planted (id int)")
    with tenancy.activate(tenant_acme):
        assert list(Ticket.objects.values_list("subject", flat=True)) == ["survives"]


@needs_owner_role
@pytest.mark.django_db
def test_the_app_role_cannot_delete_or_update_audit_rows_even_of_its_own_tenant(tenant_acme):
    open_ticket(tenant_acme, "audited")
    with tenancy.activate(tenant_acme):
        before = list(AuditEvent.objects.values_list("pk", "action"))
        assert before
        assert "permission denied" in refused("DELETE FROM tickets_auditevent")
        assert "permission denied" in refused("UPDATE tickets_auditevent SET action = 'forged'")
        assert list(AuditEvent.objects.values_list("pk", "action")) == before


@needs_owner_role
@pytest.mark.django_db(transaction=True)
def test_the_owner_role_deletes_audit_rows_only_of_the_merchant_it_acts_for(
    tenant_acme, tenant_globex
):
    """Deleting a merchant (helpdesk.deletion) removes its audit rows as the owner role; even
    the owner cannot reach another merchant's, nor any with no merchant active."""
    open_ticket(tenant_acme, "acme audited")
    open_ticket(tenant_globex, "globex audited")
    with connected_as_owner(connection):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM tickets_auditevent")
            assert cursor.rowcount == 0  # no merchant active: no row is visible
        with tenancy.activate(tenant_acme), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM tickets_auditevent")
            assert cursor.rowcount > 0
    with tenancy.activate(tenant_acme):
        assert not AuditEvent.objects.exists()
    with tenancy.activate(tenant_globex):
        assert AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_with_no_transaction_open_no_merchants_row_is_visible(tenant_acme):
    open_ticket(tenant_acme, "Acme problem")
    with tenancy.activate(tenant_acme):
        assert Ticket.objects.count() == 1  # committed, and there to be seen
    raw = raw_app_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM tickets_ticket")
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT count(*) FROM tickets_customer")
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT count(*) FROM tickets_auditevent")
            assert cursor.fetchone()[0] == 0
    finally:
        raw.close()


@pytest.mark.django_db(transaction=True)
def test_work_outside_a_transaction_leaves_no_tenant_on_the_connection(tenant_acme):
    open_ticket(tenant_acme, "Acme problem")
    with tenancy.activate(tenant_acme):
        assert connection.get_autocommit()
        assert Ticket.objects.get().subject == "Acme problem"  # autocommit: its own transaction
        Customer.objects.filter(pk=Ticket.objects.get().customer_id).update(name="陈静")
        assert Customer.objects.get().name == "陈静"
    assert session_tenant_setting() == ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tickets_ticket")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_request_leaves_no_tenant_on_the_connection(tenant_acme, agent_li):
    open_ticket(tenant_acme, "Acme problem")
    page = login(agent_li).get("/tickets/?status=all")
    assert "Acme problem" in page.content.decode()
    assert session_tenant_setting() == ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tickets_ticket")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_task_leaves_no_tenant_on_the_connection(tenant_acme):
    from celery import shared_task

    @shared_task(base=tenancy.TenantTask)
    def count_tickets(tenant_id: int) -> int:
        return Ticket.objects.count()

    open_ticket(tenant_acme, "Acme problem")
    assert count_tickets.apply(args=[tenant_acme.pk]).get() == 1
    assert session_tenant_setting() == ""


@pytest.mark.django_db(transaction=True)
def test_idle_agent_sockets_hold_no_database_connection(agent_li, tenant_acme):
    from tickets.consumers import AgentEventsConsumer

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        the_tests_own = cursor.fetchone()[0]

    def other_connections_to_this_database() -> int:
        # Run on a thread of its own (not the consumers'), and hang up after.
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND pid <> %s",
                    [the_tests_own],
                )
                return cursor.fetchone()[0]
        finally:
            connection.close()

    async def scenario() -> tuple[int, dict]:
        sockets = [
            WebsocketCommunicator(AgentEventsConsumer.as_asgi(), "/ws/agent/") for _ in "abc"
        ]
        for socket in sockets:
            socket.scope["user"] = agent_li
            socket.scope["session"] = {}
            assert (await socket.connect())[0]
        idle = await sync_to_async(other_connections_to_this_database, thread_sensitive=False)()
        await sync_to_async(open_ticket)(tenant_acme, "空调不制冷")
        heard = await sockets[0].receive_json_from(timeout=5)
        for socket in sockets:
            await socket.disconnect()
        return idle, heard

    idle, heard = asyncio.run(scenario())
    assert idle == 0
    assert heard["event"] == "ticket.created"


@pytest.mark.django_db(transaction=True)
def test_every_kind_of_statement_outside_a_transaction_sees_the_active_tenants_rows(
    tenant_acme, tenant_globex
):
    with tenancy.activate(tenant_globex):
        CustomerFactory(name="Globex 陈静")
    with tenancy.activate(tenant_acme):
        CustomerFactory(name="陈静 100%")
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM tickets_customer WHERE name LIKE '%100%'")
            assert cursor.fetchall() == [("陈静 100%",)]
            cursor.execute(
                "SELECT count(*) FROM tickets_customer WHERE name LIKE %(pattern)s",
                {"pattern": "%陈静%"},
            )
            assert cursor.fetchone()[0] == 1
            cursor.executemany(
                "UPDATE tickets_customer SET name = %s WHERE name LIKE %s",
                [("陈静", "陈静 %"), ("Globex", "Globex%")],
            )
        assert [c.name for c in Customer.objects.iterator(chunk_size=1)] == ["陈静"]
    with tenancy.activate(tenant_globex):
        assert list(Customer.objects.values_list("name", flat=True)) == ["Globex 陈静"]
    assert session_tenant_setting() == ""
