"""The whole merchant's data as one ZIP (GDPR portability, or leaving the helpdesk).

An owner asks for it; a task (``helpdesk.tasks.write_tenant_export``) writes it under
``MEDIA_ROOT/exports/<tenant id>/``, which is never served but through the owners-only download
view, and emails the owner who asked. The link works for ``HELPDESK_EXPORT_DAYS`` days; the
hourly sweep then removes the file.

The ZIP (format version ``FORMAT_VERSION``, described in docs/accounts.md):
- ``manifest.json``: the format version, the merchant, when, and rows per model;
- ``data/<app>.<model>.jsonl``: one JSON object per row of every tenant-owned model (found from
  the models, so a new one is never forgotten), plus ``helpdesk.tenant`` (the merchant's own
  row), ``helpdesk.membership`` (with each person's name and email) and the invitations;
- ``csv/customers.csv`` and the like for the main tables, for a spreadsheet;
- ``files/attachments/<id>/<name>`` and ``files/logo.<ext>``: the stored files.

Rows are read with server-side cursors in chunks and written straight into the ZIP, so memory
stays flat however large the merchant is. Secrets (signing secrets, encrypted passwords, tokens)
are left out: their rows are there, their values read ``"[redacted]"``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from helpdesk import tenancy
from helpdesk.errors import HelpdeskError, InvalidTransition, NotFound
from helpdesk.models import Membership, Tenant, TenantExport
from helpdesk.permissions import ActingAgent, Capability, require
from helpdesk.tenancy import TenantOwned
from tickets import audit
from tickets.audit import AuditKind

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CHUNK_ROWS = 1000
REDACTED = "[redacted]"
STALE_AFTER = timedelta(hours=1)
# Text fields whose names say they hold a secret: exported as REDACTED.
_SECRET_NAME_PARTS = ("secret", "password", "token", "encrypted")
# The main tables, also as CSV for a spreadsheet: (file name, app label, model name).
CSV_TABLES = (
    ("customers", "tickets", "Customer"),
    ("orders", "tickets", "Order"),
    ("order_lines", "tickets", "OrderLine"),
    ("tickets", "tickets", "Ticket"),
    ("messages", "tickets", "Message"),
)
# A platform table with a ``tenant`` foreign key that is exported too (from helper A's work).
_INVITATION_MODEL = ("helpdesk", "Invitation")


class ExportExpired(HelpdeskError):
    code = "export_expired"
    status = 410


# --- asking for one, offering it --------------------------------------------------------------


def request_export(*, acting_agent: ActingAgent) -> TenantExport:
    """Start writing a new export of all the merchant's data (owners only); while one is
    still being written it is the one returned, not a second. Audited."""
    require(acting_agent, Capability.MANAGE_MERCHANT)
    from helpdesk.tasks import write_tenant_export

    with transaction.atomic():
        # One export at a time per merchant: the tenant row is the lock.
        Tenant.objects.select_for_update().get(pk=acting_agent.tenant.pk)
        # One that never started within the hour (the broker was down) no longer counts.
        running = TenantExport.objects.filter(
            state__in=[TenantExport.State.PENDING, TenantExport.State.RUNNING],
            created_at__gte=timezone.now() - STALE_AFTER,
        ).first()
        if running is not None:
            return running
        export = TenantExport.objects.create(created_by=acting_agent.user)
        audit.record(actor=acting_agent, kind=AuditKind.EXPORT_REQUESTED, obj=export)
        write_tenant_export.delay_on_commit(acting_agent.tenant.pk, export.pk)
    return export


def exports_of(*, acting_agent: ActingAgent) -> list[TenantExport]:
    """The merchant's past exports, newest first (owners only)."""
    require(acting_agent, Capability.MANAGE_MERCHANT)
    return list(TenantExport.objects.select_related("created_by")[:50])


def access_export(*, acting_agent: ActingAgent, export_id: int) -> TenantExport:
    """The merchant's export for an owner; another merchant's id is 404."""
    require(acting_agent, Capability.MANAGE_MERCHANT)
    export = TenantExport.objects.filter(pk=export_id).first()
    if export is None:
        raise NotFound(_("There is no such export"))
    return export


def open_export_for_download(*, acting_agent: ActingAgent, export_id: int) -> tuple[Any, str]:
    """The ready export's file, opened, and its download name; refused once the link expired.
    The download is audited."""
    export = access_export(acting_agent=acting_agent, export_id=export_id)
    now = timezone.now()
    if export.state in {TenantExport.State.PENDING, TenantExport.State.RUNNING}:
        raise InvalidTransition(_("This export is still being written"))
    if export.state == TenantExport.State.FAILED:
        raise InvalidTransition(_("This export failed; start a new one"))
    if not export.is_downloadable(now):
        raise ExportExpired(_("This export has expired; start a new one"))
    try:
        stored = default_storage.open(export.file_path, "rb")
    except FileNotFoundError:
        raise ExportExpired(_("This export has expired; start a new one")) from None
    with transaction.atomic():
        audit.record(actor=acting_agent, kind=AuditKind.EXPORT_DOWNLOADED, obj=export)
    tenant = acting_agent.tenant
    return stored, f"{tenant.slug}-export-{export.created_at:%Y%m%d-%H%M}.zip"


# --- writing it -----------------------------------------------------------------------------


def exported_models() -> list[type[models.Model]]:
    """Every concrete tenant-owned model, in a stable order."""
    found = [
        model
        for model in apps.get_models()
        if issubclass(model, TenantOwned) and not model._meta.proxy
    ]
    return sorted(found, key=lambda model: model._meta.label_lower)


def _is_secret(field: models.Field) -> bool:
    return isinstance(field, models.CharField | models.TextField) and any(
        part in field.name for part in _SECRET_NAME_PARTS
    )


def json_value(value: Any) -> Any:
    """A column's value as JSON holds it: bytes in base64, Decimal as text, times in ISO 8601."""
    if isinstance(value, bytes | memoryview | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def _rows(model: type[models.Model], queryset: models.QuerySet) -> Iterator[dict[str, Any]]:
    fields = model._meta.concrete_fields
    names = [field.attname for field in fields]
    secret = {field.attname for field in fields if _is_secret(field)}
    for values in queryset.order_by("pk").values_list(*names).iterator(chunk_size=CHUNK_ROWS):
        yield {
            name: (REDACTED if name in secret and value else json_value(value))
            for name, value in zip(names, values, strict=True)
        }


def _write_jsonl(archive: zipfile.ZipFile, name: str, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    with archive.open(name, "w", force_zip64=True) as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str))
            out.write("\n")
            count += 1
        out.flush()
        out.detach()
    return count


def _write_csv(archive: zipfile.ZipFile, name: str, model: type[models.Model]) -> None:
    names = [field.attname for field in model._meta.concrete_fields]
    secret = {field.attname for field in model._meta.concrete_fields if _is_secret(field)}
    with archive.open(name, "w", force_zip64=True) as raw:
        # UTF-8 with a BOM: Excel then reads Chinese names right.
        out = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        writer = csv.writer(out)
        writer.writerow(names)
        queryset = model.objects.order_by("pk").values_list(*names)
        for values in queryset.iterator(chunk_size=CHUNK_ROWS):
            writer.writerow(
                [
                    REDACTED if column in secret and value else _csv_value(value)
                    for column, value in zip(names, values, strict=True)
                ]
            )
        out.flush()
        out.detach()


def _csv_value(value: Any) -> Any:
    value = json_value(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    return value


def _copy_file(archive: zipfile.ZipFile, stored_name: str, archive_name: str) -> bool:
    try:
        source = default_storage.open(stored_name, "rb")
    except (FileNotFoundError, OSError):
        logger.warning("export: stored file %s is missing", stored_name)
        return False
    with source, archive.open(archive_name, "w", force_zip64=True) as target:
        shutil.copyfileobj(source, target, length=1024 * 1024)
    return True


def _safe_file_name(name: str) -> str:
    cleaned = "".join(ch if ch.isprintable() and ch not in '/\\:*?"<>|' else "_" for ch in name)
    return cleaned.strip(". ") or "file"


def _membership_rows(tenant: Tenant) -> Iterator[dict[str, Any]]:
    memberships = Membership.objects.filter(tenant=tenant).select_related("user").order_by("pk")
    for membership in memberships.iterator(chunk_size=CHUNK_ROWS):
        user = membership.user
        yield {
            "id": membership.pk,
            "user_id": membership.user_id,
            "username": user.get_username(),
            "name": user.get_full_name(),
            "email": user.email,
            "role": membership.role,
            "display_name": membership.display_name,
            "language": membership.language,
            "phone": membership.phone,
            "created_at": json_value(membership.created_at),
        }


def _platform_rows(model: type[models.Model], tenant: Tenant) -> Iterator[dict[str, Any]]:
    yield from _rows(model, model._default_manager.filter(tenant=tenant))


def write_archive(*, tenant: Tenant, target: Path) -> dict[str, int]:
    """Write the merchant's ZIP to ``target``; returns rows per model. Run with the tenant
    active and inside a transaction (the server-side cursors need one)."""
    counts: dict[str, int] = {}
    files = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        tenant_model = type(tenant)
        counts["helpdesk.tenant"] = _write_jsonl(
            zf,
            "data/helpdesk.tenant.jsonl",
            _rows(tenant_model, tenant_model.objects.filter(pk=tenant.pk)),
        )
        counts["helpdesk.membership"] = _write_jsonl(
            zf, "data/helpdesk.membership.jsonl", _membership_rows(tenant)
        )
        try:
            invitation = apps.get_model(*_INVITATION_MODEL)
        except LookupError:
            invitation = None
        if invitation is not None and not issubclass(invitation, TenantOwned):
            label = invitation._meta.label_lower
            counts[label] = _write_jsonl(
                zf, f"data/{label}.jsonl", _platform_rows(invitation, tenant)
            )
        for model in exported_models():
            label = model._meta.label_lower
            counts[label] = _write_jsonl(zf, f"data/{label}.jsonl", _rows(model, model.objects))
        for file_name, app_label, model_name in CSV_TABLES:
            _write_csv(zf, f"csv/{file_name}.csv", apps.get_model(app_label, model_name))
        attachment_model = apps.get_model("tickets", "Attachment")
        attachments = (
            attachment_model.objects.exclude(file="")
            .order_by("pk")
            .values_list("pk", "file", "filename")
        )
        for pk, stored_name, filename in attachments.iterator(chunk_size=CHUNK_ROWS):
            name = f"files/attachments/{pk}/{_safe_file_name(filename)}"
            files += _copy_file(zf, stored_name, name)
        if tenant.logo:
            extension = tenant.logo.name.rpartition(".")[2]
            files += _copy_file(zf, tenant.logo.name, f"files/logo.{extension}")
        manifest = {
            "format_version": FORMAT_VERSION,
            "tenant": {"id": tenant.pk, "slug": tenant.slug, "name": tenant.name},
            "created_at": timezone.now().isoformat(),
            "counts": counts,
            "files": files,
            "csv": [f"csv/{file_name}.csv" for file_name, _app, _model in CSV_TABLES],
        }
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
    return counts


def write_export(*, export: TenantExport) -> TenantExport:
    """Write a queued export (the task calls this with the tenant active), then tell the owner
    who asked. A failure is kept on the export, with no half-written file left."""
    tenant = tenancy.require_tenant()
    claimed = TenantExport.objects.filter(
        pk=export.pk, state__in=[TenantExport.State.PENDING, TenantExport.State.RUNNING]
    ).update(state=TenantExport.State.RUNNING)
    if claimed != 1:
        return export
    relative = f"exports/{tenant.pk}/{uuid.uuid4().hex}.zip"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with transaction.atomic():
            counts = write_archive(tenant=tenant, target=target)
    except Exception as exc:
        logger.exception("export %s of tenant %s failed", export.pk, tenant.pk)
        target.unlink(missing_ok=True)
        TenantExport.objects.filter(pk=export.pk).update(
            state=TenantExport.State.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        export.refresh_from_db()
        return export
    now = timezone.now()
    TenantExport.objects.filter(pk=export.pk).update(
        state=TenantExport.State.READY,
        file_path=relative,
        size_bytes=target.stat().st_size,
        counts=counts,
        finished_at=now,
        expires_at=now + timedelta(days=settings.HELPDESK_EXPORT_DAYS),
    )
    export.refresh_from_db()
    _tell_owner(export=export, tenant=tenant)
    return export


def _tell_owner(*, export: TenantExport, tenant: Tenant) -> None:
    owner = export.created_by
    if owner is None or not owner.email:
        return
    membership = Membership.objects.filter(tenant=tenant, user=owner).first()
    language = (membership.language if membership else "") or tenant.locale
    link = settings.HELPDESK_PUBLIC_URL.rstrip("/") + reverse("settings:exports")
    with translation.override(language):
        subject = _("Your data export of %(merchant)s is ready") % {"merchant": tenant.name}
        body = _(
            "The export of all the data of %(merchant)s is ready. Download it from the export "
            "page before %(expires)s; after that the file is deleted:\n\n%(link)s\n"
        ) % {
            "merchant": tenant.name,
            "expires": timezone.localtime(export.expires_at).strftime("%Y-%m-%d %H:%M %Z"),
            "link": link,
        }
    try:
        send_mail(subject, body, None, [owner.email])
    except Exception:  # the export is ready either way; the page lists it
        logger.exception("could not email the owner about export %s", export.pk)


def remove_expired_exports(*, now: datetime | None = None) -> int:
    """Delete the files of the active merchant's exports whose link expired; the rows stay,
    marked expired, so the page still lists them."""
    now = now or timezone.now()
    expired = TenantExport.objects.filter(
        state=TenantExport.State.READY, expires_at__lte=now
    ).values_list("pk", "file_path")
    removed = 0
    for pk, file_path in list(expired):
        if file_path:
            default_storage.delete(file_path)
        removed += TenantExport.objects.filter(pk=pk).update(
            state=TenantExport.State.EXPIRED, file_path=""
        )
    return removed
