"""An owner's export of all the merchant's data: everything of theirs, nothing of anyone else's,
only for owners, and only until the link expires."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from helpdesk import exports, tenancy
from helpdesk.models import Membership, Role, TenantExport
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory
from tests.helpdesk.test_cross_tenant_fks import build_one_of_everything

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def globex_owner(tenant_globex):
    return MembershipFactory(
        tenant=tenant_globex, user=UserFactory(username="owner.globex"), role=Role.OWNER
    ).user


def start_export(client, django_capture_on_commit_callbacks, tenant) -> TenantExport:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/settings/account/export/")
    assert response.status_code == 302
    with tenancy.activate(tenant):
        return TenantExport.objects.order_by("-pk").first()


def read_zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def ids_in_table(tenant, table: str) -> set[int]:
    with tenancy.activate(tenant), connection.cursor() as cursor:
        cursor.execute(f'SELECT id FROM "{table}"')
        return {row[0] for row in cursor.fetchall()}


def test_the_export_holds_every_row_of_the_merchant_and_none_of_another(
    tenant_acme, tenant_globex, owner_chen, globex_owner, django_capture_on_commit_callbacks
):
    build_one_of_everything(tenant_acme)
    build_one_of_everything(tenant_globex)
    from tickets.models import Attachment

    with tenancy.activate(tenant_acme):
        attachment = Attachment.objects.get()
        attachment.file.save("x", ContentFile("发票 invoice".encode()), save=True)

    export = start_export(login(owner_chen), django_capture_on_commit_callbacks, tenant_acme)
    assert export.state == TenantExport.State.READY
    tables = {model: model._meta.db_table for model in exports.exported_models()}
    acme_ids = {model: ids_in_table(tenant_acme, table) for model, table in tables.items()}
    globex_ids = {model: ids_in_table(tenant_globex, table) for model, table in tables.items()}
    response = login(owner_chen).get(f"/settings/account/export/{export.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = read_zip(response)

    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format_version"] == exports.FORMAT_VERSION
    assert manifest["tenant"]["slug"] == "acme"
    models = exports.exported_models()
    assert len(models) >= 40
    rows_found = 0
    for model in models:
        label = model._meta.label_lower
        assert label in manifest["counts"], f"{label} is missing from the export"
        lines = archive.read(f"data/{label}.jsonl").decode().splitlines()
        rows = [json.loads(line) for line in lines]
        assert manifest["counts"][label] == len(rows)
        assert {row["tenant_id"] for row in rows} <= {tenant_acme.pk}
        # Exactly acme's rows: every one of them, and none of globex's ids.
        assert {row["id"] for row in rows} == acme_ids[model], label
        assert not {row["id"] for row in rows} & globex_ids[model], label
        rows_found += len(rows)
    # Both merchants have a row in every table (build_one_of_everything): none is skipped.
    empty = sorted(label for label, count in manifest["counts"].items() if count == 0)
    assert not empty, f"add a row of {empty} to build_one_of_everything()"

    tenant_rows = [json.loads(x) for x in archive.read("data/helpdesk.tenant.jsonl").splitlines()]
    assert [row["id"] for row in tenant_rows] == [tenant_acme.pk]
    people = [json.loads(x) for x in archive.read("data/helpdesk.membership.jsonl").splitlines()]
    assert {p["email"] for p in people} == {"chen.acme@example.com"}
    # The attachment's file itself, and the main tables as CSV for a spreadsheet.
    assert archive.read(f"files/attachments/{attachment.pk}/a.txt") == "发票 invoice".encode()
    customers_csv = archive.read("csv/customers.csv").decode("utf-8-sig").splitlines()
    assert customers_csv[0].startswith("id,")
    assert len(customers_csv) == 2
    # Nothing of globex anywhere, not even its name or its mailbox.
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"globex" not in everything.lower()
    # Secrets are left out, their rows kept.
    channels = archive.read("data/channels_in.channelaccount.jsonl").decode()
    assert '"inbound_secret": "[redacted]"' in channels


def test_the_owner_is_emailed_when_the_export_is_ready_and_it_is_audited(
    tenant_acme, owner_chen, django_capture_on_commit_callbacks
):
    export = start_export(login(owner_chen), django_capture_on_commit_callbacks, tenant_acme)
    assert [m.to for m in mail.outbox] == [["chen.acme@example.com"]]
    assert "/settings/account/export/" in mail.outbox[0].body
    page = login(owner_chen).get("/settings/account/export/").content.decode()
    assert f'href="/settings/account/export/{export.pk}/"' in page
    login(owner_chen).get(f"/settings/account/export/{export.pk}/")
    from tickets.models import AuditEvent

    with tenancy.activate(tenant_acme):
        actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["export.requested", "export.downloaded"]


def test_only_owners_start_or_download_an_export(
    tenant_acme, owner_chen, admin_zhao, agent_li, django_capture_on_commit_callbacks
):
    for person in (admin_zhao, agent_li):
        assert login(person).post("/settings/account/export/").status_code == 403
        assert login(person).get("/settings/account/export/").status_code == 403
    with tenancy.activate(tenant_acme):
        assert not TenantExport.objects.exists()
    export = start_export(login(owner_chen), django_capture_on_commit_callbacks, tenant_acme)
    for person in (admin_zhao, agent_li):
        assert login(person).get(f"/settings/account/export/{export.pk}/").status_code == 403


def test_another_merchants_export_is_not_found(
    tenant_acme, owner_chen, globex_owner, django_capture_on_commit_callbacks
):
    export = start_export(login(owner_chen), django_capture_on_commit_callbacks, tenant_acme)
    assert login(globex_owner).get(f"/settings/account/export/{export.pk}/").status_code == 404


def test_the_link_expires_and_the_file_is_removed(
    tenant_acme, owner_chen, media, django_capture_on_commit_callbacks
):
    export = start_export(login(owner_chen), django_capture_on_commit_callbacks, tenant_acme)
    assert (media / export.file_path).exists()
    with tenancy.activate(tenant_acme):
        TenantExport.objects.filter(pk=export.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    response = login(owner_chen).get(f"/settings/account/export/{export.pk}/")
    assert response.status_code == 410
    page = login(owner_chen).get("/settings/account/export/").content.decode()
    assert f'href="/settings/account/export/{export.pk}/"' not in page
    with tenancy.activate(tenant_acme):
        assert exports.remove_expired_exports() == 1
    assert not (media / export.file_path).exists()
    with tenancy.activate(tenant_acme):
        export.refresh_from_db()
    assert export.state == TenantExport.State.EXPIRED


def test_a_second_request_while_one_is_written_does_not_start_another(
    tenant_acme, owner_chen, in_acme
):
    from helpdesk.permissions import acting_agent_for

    acting = acting_agent_for(owner_chen, tenant_acme)
    first = exports.request_export(acting_agent=acting)  # not run: no commit in this test
    assert exports.request_export(acting_agent=acting) == first
    assert TenantExport.objects.count() == 1
    assert Membership.objects.filter(tenant=tenant_acme).count() == 1
