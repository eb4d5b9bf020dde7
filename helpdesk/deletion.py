"""Deleting a merchant: asked for by an owner, carried out after a grace period.

- An owner asks, with their password and the merchant's slug typed out. The merchant gets a
  deletion date ``HELPDESK_TENANT_DELETION_DAYS`` (30) days ahead; every page shows it with a
  Cancel button for owners, and every owner is emailed. Until then the merchant works as
  before: mail, chats and orders keep arriving and are kept.
- An owner may cancel until the date; both are audited.
- The hourly task ``delete_due_tenants`` deletes each merchant whose date has passed, logged in
  as the database owner role (the app role cannot delete the audit log, and must not be able
  to): every tenant-owned row, its memberships, API keys and invitations, its files (attachments,
  logo, exports), then the merchant itself, in one transaction. A ``TenantDeletionRecord``
  (id, name, slug, dates, rows removed per table; no personal data) is kept.
- People whose only membership was this merchant lose their account: it is deleted with their
  sign-in addresses and authenticators. One still named by another merchant's rows (an author
  in its audit log) is deactivated instead, its password made unusable.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.db import IntegrityError, connection, models, transaction
from django.db.models import ProtectedError
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from helpdesk import tenancy
from helpdesk.db.roles import connected_as_owner
from helpdesk.errors import BadInput, InvalidTransition
from helpdesk.models import Membership, Role, Tenant, TenantDeletionRecord
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.tenancy import TenantOwned
from tickets import audit
from tickets.audit import AuditKind

logger = logging.getLogger(__name__)

# Folders under MEDIA_ROOT that hold one merchant's files each, as <folder>/<tenant id>/.
MEDIA_FOLDERS = ("attachments", "logos", "exports")


# --- asking and cancelling ---------------------------------------------------------------


def request_deletion(*, acting_agent: ActingAgent, password: str, slug: str) -> Tenant:
    """Schedule the merchant's deletion ``HELPDESK_TENANT_DELETION_DAYS`` days from now (owners
    only, who confirm with their password and the merchant's slug); owners are emailed."""
    require(acting_agent, Capability.MANAGE_MERCHANT)
    if not acting_agent.user.check_password(password or ""):
        raise BadInput(_("The password is not right"), field="password")
    if (slug or "").strip() != acting_agent.tenant.slug:
        raise BadInput(
            _("Type %(slug)s to confirm") % {"slug": acting_agent.tenant.slug}, field="slug"
        )
    now = timezone.now()
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=acting_agent.tenant.pk)
        if tenant.deletion_due_at is not None:
            raise InvalidTransition(_("The deletion of this merchant is already scheduled"))
        due = now + timedelta(days=settings.HELPDESK_TENANT_DELETION_DAYS)
        tenant.deletion_requested_at = now
        tenant.deletion_due_at = due
        tenant.save(update_fields=["deletion_requested_at", "deletion_due_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.DELETION_REQUESTED,
            obj=tenant,
            changes={"deletion_due_at": (None, due)},
        )
        transaction.on_commit(lambda: _tell_owners(tenant=tenant, cancelled=False))
    acting_agent.tenant.deletion_requested_at = now
    acting_agent.tenant.deletion_due_at = due
    return tenant


def cancel_deletion(*, acting_agent: ActingAgent) -> Tenant:
    """Keep the merchant: clear a scheduled deletion (owners only); owners are emailed."""
    require(acting_agent, Capability.MANAGE_MERCHANT)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=acting_agent.tenant.pk)
        if tenant.deletion_due_at is None:
            return tenant
        due = tenant.deletion_due_at
        tenant.deletion_requested_at = None
        tenant.deletion_due_at = None
        tenant.save(update_fields=["deletion_requested_at", "deletion_due_at"])
        audit.record(
            actor=acting_agent,
            kind=AuditKind.DELETION_CANCELLED,
            obj=tenant,
            changes={"deletion_due_at": (due, None)},
        )
        transaction.on_commit(lambda: _tell_owners(tenant=tenant, cancelled=True))
    acting_agent.tenant.deletion_requested_at = None
    acting_agent.tenant.deletion_due_at = None
    return tenant


def _tell_owners(*, tenant: Tenant, cancelled: bool) -> None:
    owners = Membership.objects.filter(tenant=tenant, role=Role.OWNER).select_related("user")
    link = settings.HELPDESK_PUBLIC_URL.rstrip("/") + reverse("settings:deletion")
    for membership in owners:
        if not membership.user.email:
            continue
        with translation.override(membership.language or tenant.locale):
            if cancelled:
                subject = _("The deletion of %(merchant)s is cancelled") % {"merchant": tenant.name}
                body = _("%(merchant)s will not be deleted: an owner cancelled it.\n\n%(link)s\n")
            else:
                subject = _("%(merchant)s will be deleted on %(date)s")
                body = _(
                    "An owner asked to delete %(merchant)s. On %(date)s all its tickets, "
                    "customers, orders, files and settings will be deleted for good. Until "
                    "then it works as before, and any owner can cancel the deletion here:\n\n"
                    "%(link)s\n\nExport the data first if you want to keep it.\n"
                )
            values = {
                "merchant": tenant.name,
                "date": timezone.localtime(
                    tenant.deletion_due_at or timezone.now(),
                    timezone=_zone(tenant),
                ).strftime("%Y-%m-%d %H:%M %Z"),
                "link": link,
            }
            try:
                send_mail(subject % values, body % values, None, [membership.user.email])
            except Exception:
                logger.exception("could not email %s about deletion", membership.user_id)


def _zone(tenant: Tenant) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(tenant.time_zone)


# --- carrying it out -----------------------------------------------------------------------


def due_tenant_ids(*, now: datetime | None = None) -> list[int]:
    """Merchants whose deletion date has passed."""
    now = now or timezone.now()
    return list(
        Tenant.objects.filter(deletion_due_at__isnull=False, deletion_due_at__lte=now)
        .order_by("deletion_due_at")
        .values_list("pk", flat=True)
    )


def _tables_pointing_at_tenant() -> list[tuple[str, str]]:
    """(table, column) of every platform table with a foreign key to the tenant (memberships,
    API keys, invitations, and whatever comes later)."""
    found = []
    for model in apps.get_models():
        if issubclass(model, TenantOwned) or model is TenantDeletionRecord:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model is Tenant:
                found.append((model._meta.db_table, field.column))
    return found


def _delete_rows(tenant: Tenant) -> dict[str, int]:
    """Delete every row of the merchant, the tenant row last; rows removed per table."""
    counts: dict[str, int] = {}
    quote = connection.ops.quote_name
    with tenancy.activate(tenant), connection.cursor() as cursor:
        for model in apps.get_models():
            if not issubclass(model, TenantOwned) or model._meta.proxy:
                continue
            table = model._meta.db_table
            # Append-only tables (the audit log) have a DELETE policy for the owner role alone
            # (helpdesk.rls). Foreign keys are checked at commit (deferred), so the order does
            # not matter.
            cursor.execute(f"DELETE FROM {quote(table)} WHERE tenant_id = %s", [tenant.pk])
            if cursor.rowcount:
                counts[table] = cursor.rowcount
        for table, column in _tables_pointing_at_tenant():
            cursor.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} = %s", [tenant.pk])
            if cursor.rowcount:
                counts[table] = cursor.rowcount
        cursor.execute(f"DELETE FROM {quote(Tenant._meta.db_table)} WHERE id = %s", [tenant.pk])
        counts[Tenant._meta.db_table] = cursor.rowcount
    return counts


def _delete_media(tenant_id: int) -> int:
    """Remove the merchant's folders under MEDIA_ROOT; files removed."""
    removed = 0
    for folder in MEDIA_FOLDERS:
        path = Path(settings.MEDIA_ROOT) / folder / str(tenant_id)
        if path.is_dir():
            removed += sum(1 for item in path.rglob("*") if item.is_file())
            shutil.rmtree(path, ignore_errors=True)
    return removed


def _remove_people(user_ids: list[int]) -> dict[str, int]:
    """Delete the accounts of people left with no merchant; deactivate one that another
    merchant's rows still name (the database refuses its deletion)."""
    user_model = get_user_model()
    result = {"deleted": 0, "deactivated": 0}
    for user in user_model.objects.filter(pk__in=user_ids, is_staff=False, is_superuser=False):
        if Membership.objects.filter(user=user).exists():
            continue
        user_id = user.pk  # delete() clears it, even when the transaction then rolls back
        try:
            with transaction.atomic(), tenancy.deactivate():
                user.delete()
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            result["deleted"] += 1
        except (IntegrityError, ProtectedError):
            # PostgreSQL: another merchant's rows (unseen under RLS) still name them, and the
            # foreign key refuses. SQLite (make run) has no RLS: the audit log's PROTECT says so.
            user_model.objects.filter(pk=user_id).update(
                is_active=False, password=make_password(None)
            )
            result["deactivated"] += 1
    return result


def delete_tenant(*, tenant_id: int, now: datetime | None = None) -> TenantDeletionRecord | None:
    """Delete a merchant whose deletion date has passed, completely (see the module's
    docstring); None when it is not due (cancelled meanwhile, or already gone)."""
    now = now or timezone.now()
    with connected_as_owner(connection):
        with transaction.atomic():
            tenant = (
                Tenant.objects.select_for_update()
                .filter(pk=tenant_id, deletion_due_at__isnull=False, deletion_due_at__lte=now)
                .first()
            )
            if tenant is None:
                return None
            user_ids = list(
                Membership.objects.filter(tenant=tenant).values_list("user_id", flat=True)
            )
            counts = _delete_rows(tenant)
            record = TenantDeletionRecord.objects.create(
                former_tenant_id=tenant.pk,
                name=tenant.name,
                slug=tenant.slug,
                requested_at=tenant.deletion_requested_at,
                row_counts=counts,
            )
        # The rows are gone for good: now their files and the people left with no merchant.
        files = _delete_media(tenant_id)
        people = _remove_people(user_ids)
        record.row_counts = {**counts, "files": files, "people": people}
        record.save(update_fields=["row_counts"])
    logger.info("deleted tenant %s (%s): %s", tenant_id, record.slug, record.row_counts)
    return record


def delete_due_tenants(*, now: datetime | None = None) -> list[TenantDeletionRecord]:
    """Delete every merchant whose grace period is over; one failure does not stop the rest."""
    records = []
    for tenant_id in due_tenant_ids(now=now):
        try:
            record = delete_tenant(tenant_id=tenant_id, now=now)
        except Exception:
            logger.exception("deleting tenant %s failed; tried again next hour", tenant_id)
            continue
        if record is not None:
            records.append(record)
    return records
