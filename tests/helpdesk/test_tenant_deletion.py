"""Deleting a merchant: an owner asks with their password and the slug, the merchant works on
through the grace period with a banner, an owner may cancel, and the hourly task then deletes
everything of the merchant (as the database owner role, with row-level security on) and
nothing of anyone else."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from helpdesk import rls, tasks, tenancy
from helpdesk.models import ApiKey, Membership, Role, Tenant, TenantDeletionRecord
from tests.conftest import PASSWORD, login
from tests.factories import MembershipFactory, UserFactory
from tests.helpdesk.test_cross_tenant_fks import build_one_of_everything

DELETE = "/settings/account/delete/"
CANCEL = "/settings/account/delete/cancel/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def audit_actions(tenant: Tenant) -> list[str]:
    from tickets.models import AuditEvent

    with tenancy.activate(tenant):
        return list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))


# --- asking and cancelling ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "slug", "error"),
    [
        ("wrong password", "acme", "The password is not right"),
        (PASSWORD, "acme-typo", "Type acme to confirm"),
        (PASSWORD, "", "This field is required"),
    ],
    ids=["wrong-password", "wrong-slug", "no-slug"],
)
def test_asking_for_deletion_needs_the_password_and_the_slug(
    tenant_acme, owner_chen, password, slug, error
):
    response = login(owner_chen).post(DELETE, {"password": password, "slug": slug})
    assert response.status_code == 400
    assert error in response.content.decode()
    tenant_acme.refresh_from_db()
    assert tenant_acme.deletion_due_at is None
    assert audit_actions(tenant_acme) == []


@pytest.mark.django_db
def test_an_owner_schedules_the_deletion_and_every_page_shows_the_date(
    tenant_acme, owner_chen, agent_li, settings, django_capture_on_commit_callbacks
):
    settings.HELPDESK_TENANT_DELETION_DAYS = 30
    second_owner = MembershipFactory(
        tenant=tenant_acme, user=UserFactory(username="sun.acme"), role=Role.OWNER
    ).user
    with django_capture_on_commit_callbacks(execute=True):
        response = login(owner_chen).post(DELETE, {"password": PASSWORD, "slug": "acme"})
    assert response.status_code == 302
    tenant_acme.refresh_from_db()
    due = tenant_acme.deletion_due_at
    assert timedelta(days=29, hours=23) < due - timezone.now() <= timedelta(days=30)
    assert audit_actions(tenant_acme) == ["merchant.deletion_requested"]
    # Every owner is told the date; agents are not.
    assert sorted(m.to[0] for m in mail.outbox) == [
        "chen.acme@example.com",
        second_owner.email,
    ]
    # Worded in the merchant's time zone (Asia/Shanghai): after 16:00 UTC that is the next day.
    local_due = due.astimezone(ZoneInfo(tenant_acme.time_zone))
    assert local_due.strftime("%Y-%m-%d") in mail.outbox[0].subject + mail.outbox[0].body
    # The merchant keeps working, with a banner; only owners get the Cancel button.
    owner_page = login(owner_chen).get("/tickets/").content.decode()
    assert "data-deletion-banner" in owner_page
    assert f'action="{CANCEL}"' in owner_page
    agent_page = login(agent_li).get("/tickets/")
    assert agent_page.status_code == 200
    assert "data-deletion-banner" in agent_page.content.decode()
    assert f'action="{CANCEL}"' not in agent_page.content.decode()
    # Asking twice does not move the date.
    again = login(owner_chen).post(DELETE, {"password": PASSWORD, "slug": "acme"})
    assert again.status_code == 409
    tenant_acme.refresh_from_db()
    assert tenant_acme.deletion_due_at == due


@pytest.mark.django_db
def test_cancelling_clears_the_date_and_is_audited(
    tenant_acme, owner_chen, django_capture_on_commit_callbacks
):
    client = login(owner_chen)
    client.post(DELETE, {"password": PASSWORD, "slug": "acme"})
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(CANCEL).status_code == 302
    tenant_acme.refresh_from_db()
    assert tenant_acme.deletion_due_at is None
    assert tenant_acme.deletion_requested_at is None
    assert audit_actions(tenant_acme) == [
        "merchant.deletion_requested",
        "merchant.deletion_cancelled",
    ]
    # Owners are told in the merchant's language (Acme works in zh-hans).
    assert mail.outbox[-1].subject == "Acme 家电 的删除已取消"
    assert "data-deletion-banner" not in client.get("/tickets/").content.decode()


@pytest.mark.django_db
def test_admins_and_agents_can_neither_ask_nor_cancel(tenant_acme, admin_zhao, agent_li):
    for person in (admin_zhao, agent_li):
        client = login(person)
        assert client.post(DELETE, {"password": PASSWORD, "slug": "acme"}).status_code == 403
        assert client.post(CANCEL).status_code == 403
    tenant_acme.refresh_from_db()
    assert tenant_acme.deletion_due_at is None


# --- carrying it out ------------------------------------------------------------------------


def rows_of(tenant_id: int) -> dict[str, int]:
    """Rows per tenant-owned table for one merchant, read as the app role under RLS."""
    counts = {}
    fake = Tenant(pk=tenant_id)
    with tenancy.activate(fake), connection.cursor() as cursor:
        for table, _append_only in rls.tenant_owned_tables():
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [tenant_id])
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")
def test_the_hourly_task_deletes_a_due_merchant_completely_and_nothing_else(media):
    acme = Tenant.objects.create(name="Acme 家电", slug="acme")
    globex = Tenant.objects.create(name="Globex Outdoor", slug="globex")
    shared = UserFactory(username="li", email="li@example.com")  # a member of both
    only_acme = UserFactory(username="chen.acme")
    Membership.objects.create(tenant=acme, user=shared, role=Role.AGENT)
    Membership.objects.create(tenant=acme, user=only_acme, role=Role.OWNER)
    Membership.objects.create(tenant=globex, user=shared, role=Role.OWNER)
    # Once at globex too, where the audit log still names them.
    left_globex = UserFactory(username="zhou")
    Membership.objects.create(tenant=acme, user=left_globex, role=Role.AGENT)
    from tickets.models import AuditEvent

    with tenancy.activate(globex):
        AuditEvent.objects.create(
            actor=left_globex, actor_label="zhou", action="t", object_type="t", object_id="1"
        )
    ApiKey.issue(tenant=acme, acting_user=only_acme, name="shop")
    ApiKey.issue(tenant=globex, acting_user=shared, name="shop")
    build_one_of_everything(acme)
    build_one_of_everything(globex)
    for tenant in (acme, globex):
        tenant.logo.save("logo.png", ContentFile(b"png"), save=True)
        (media / "attachments" / str(tenant.pk)).mkdir(parents=True)
        (media / "attachments" / str(tenant.pk) / "f").write_bytes(b"x")
    acme_rows, globex_rows = rows_of(acme.pk), rows_of(globex.pk)
    assert sum(1 for count in acme_rows.values() if count) >= 40
    Tenant.objects.filter(pk=acme.pk).update(
        deletion_requested_at=timezone.now() - timedelta(days=30),
        deletion_due_at=timezone.now() - timedelta(minutes=1),
    )
    # Globex asked too, but its date has not come.
    Tenant.objects.filter(pk=globex.pk).update(deletion_due_at=timezone.now() + timedelta(days=1))

    assert tasks.delete_due_tenants() == 1

    assert not Tenant.objects.filter(pk=acme.pk).exists()
    assert set(rows_of(acme.pk).values()) == {0}
    assert rows_of(globex.pk) == globex_rows
    assert Tenant.objects.filter(pk=globex.pk).exists()
    assert not Membership.objects.filter(tenant_id=acme.pk).exists()
    assert not ApiKey.objects.filter(tenant_id=acme.pk).exists()
    assert ApiKey.objects.filter(tenant_id=globex.pk).count() == 1
    # Files: acme's folders are gone, globex's are there.
    assert not (media / "attachments" / str(acme.pk)).exists()
    assert not (media / "logos" / str(acme.pk)).exists()
    assert (media / "attachments" / str(globex.pk) / "f").exists()
    assert (media / "logos" / str(globex.pk)).exists()
    # People: one with no merchant left is gone; one still at globex stays, active.
    users = get_user_model().objects
    assert not users.filter(pk=only_acme.pk).exists()
    assert users.get(pk=shared.pk).is_active
    # One still named by globex's rows is kept, but can no longer sign in.
    left = users.get(pk=left_globex.pk)
    assert not left.is_active and not left.has_usable_password()
    # The record of the deletion keeps no personal data.
    record = TenantDeletionRecord.objects.get()
    assert (record.former_tenant_id, record.slug) == (acme.pk, "acme")
    assert record.row_counts["tickets_ticket"] == 1
    assert record.row_counts["people"] == {"deleted": 1, "deactivated": 1}
    assert "example.com" not in str(record.row_counts)
    # Row-level security is still forced on the append-only audit log.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relforcerowsecurity FROM pg_class WHERE relname = 'tickets_auditevent'"
        )
        assert cursor.fetchone()[0] is True
    # Running again changes nothing: globex is not due.
    assert tasks.delete_due_tenants() == 0
    assert rows_of(globex.pk) == globex_rows


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_or_not_yet_due_merchant_is_kept():
    kept = Tenant.objects.create(name="Kept", slug="kept")
    Tenant.objects.filter(pk=kept.pk).update(deletion_due_at=timezone.now() + timedelta(hours=1))
    cancelled = Tenant.objects.create(name="Cancelled", slug="cancelled")
    assert tasks.delete_due_tenants() == 0
    assert Tenant.objects.filter(pk__in=[kept.pk, cancelled.pk]).count() == 2
    assert not TenantDeletionRecord.objects.exists()
