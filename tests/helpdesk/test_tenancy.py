from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from helpdesk import tenancy
from helpdesk.env import env_bool, parse_database_url
from tests.factories import CustomerFactory
from tickets.models import Customer


def test_a_bad_boolean_setting_is_an_error_not_false(monkeypatch):
    monkeypatch.setenv("DJANGO_DEBUG", "ture")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env_bool("DJANGO_DEBUG", False)


def test_database_url_is_parsed_for_postgres_with_our_tenant_aware_backend():
    parsed = parse_database_url("postgres://app:p%40ss@db.internal:6432/helpdesk?sslmode=require")
    assert parsed["ENGINE"] == "helpdesk.db"
    assert (parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"]) == (
        "app",
        "p@ss",
        "db.internal",
        "6432",
    )
    assert parsed["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.django_db
def test_activation_ends_with_the_block(tenant_acme):
    with tenancy.activate(tenant_acme):
        CustomerFactory(name="陈静")
        assert Customer.objects.count() == 1
    assert tenancy.current_tenant() is None
    with pytest.raises(tenancy.TenantNotActive):
        Customer.objects.count()


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_a_reused_connection_does_not_carry_the_last_tenant(tenant_acme):
    with tenancy.activate(tenant_acme):
        CustomerFactory(name="陈静")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM tickets_customer")
            assert cursor.fetchone()[0] == 1
    # Same connection, tenant gone: the next statement sees nothing.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tickets_customer")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        assert cursor.fetchone()[0] == ""


@pytest.mark.django_db
def test_celery_tasks_run_as_the_tenant_they_were_given(tenant_acme, tenant_globex):
    from celery import shared_task

    @shared_task(base=tenancy.TenantTask)
    def count_customers(tenant_id: int) -> int:
        return Customer.objects.count()

    with tenancy.activate(tenant_acme):
        CustomerFactory()
        CustomerFactory()
    assert count_customers.apply(args=[tenant_acme.pk]).get() == 2
    assert count_customers.apply(args=[tenant_globex.pk]).get() == 0
    assert tenancy.current_tenant() is None


@pytest.mark.django_db
def test_a_queryset_built_before_any_tenant_binds_when_it_runs(tenant_acme, tenant_globex):
    # e.g. a form field's choices, defined when the module is imported
    customers = Customer.objects.order_by("name")
    with tenancy.activate(tenant_acme):
        CustomerFactory(name="Acme buyer")
    with tenancy.activate(tenant_globex):
        CustomerFactory(name="Globex buyer")
    with pytest.raises(tenancy.TenantNotActive):
        list(customers.all())
    with tenancy.activate(tenant_acme):
        assert [c.name for c in customers.all()] == ["Acme buyer"]
    with tenancy.activate(tenant_globex):
        assert [c.name for c in customers.filter(name__endswith="buyer")] == ["Globex buyer"]


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_switching_tenant_inside_a_rolled_back_savepoint_leaves_no_stale_setting(
    tenant_acme, tenant_globex
):
    from django.db import transaction

    with tenancy.activate(tenant_acme):
        CustomerFactory(name="acme buyer")
    with tenancy.activate(tenant_globex):
        CustomerFactory(name="globex buyer")
    with transaction.atomic():
        with tenancy.activate(tenant_globex):
            assert Customer.all_tenants.count() == 1  # the transaction says globex
        with tenancy.activate(tenant_acme):
            with pytest.raises(RuntimeError), transaction.atomic():
                assert Customer.all_tenants.count() == 1  # acme, set inside the savepoint
                raise RuntimeError("undo")
            # The savepoint's setting went with it (back to globex): it must be set again.
            assert list(Customer.all_tenants.values_list("name", flat=True)) == ["acme buyer"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_a_failed_transaction_that_commits_leaves_no_stale_setting(tenant_acme, tenant_globex):
    """A COMMIT of a failed transaction is a rollback: the tenant set inside it is gone too."""
    from django.db import DatabaseError, transaction

    with tenancy.activate(tenant_acme):
        CustomerFactory(name="acme buyer")
    with tenancy.activate(tenant_globex):
        CustomerFactory(name="globex secret")
        assert Customer.all_tenants.count() == 1  # the session now says globex
    with tenancy.activate(tenant_acme):
        with transaction.atomic():
            assert Customer.all_tenants.count() == 1  # acme, set inside the transaction
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1/0")
            except DatabaseError:
                pass
        names = list(Customer.all_tenants.values_list("name", flat=True))
    assert names == ["acme buyer"]
