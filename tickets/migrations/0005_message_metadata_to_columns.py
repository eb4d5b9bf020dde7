"""Routing data that lived in Message.metadata becomes real columns: the channel account, the
conversation id and the status to set once a reply is sent."""

from __future__ import annotations

from typing import Any

from django.db import migrations

MOVED = ("account_id", "conversation_id", "then_status", "status_when_written")


def per_tenant(apps: Any, schema_editor: Any, work: Any) -> None:
    """Run ``work`` once per merchant with its rows visible: row-level security binds the
    owner too (FORCE), so a migration sees a merchant's rows only with its tenant set, here for
    the migration's own transaction."""
    Tenant = apps.get_model("helpdesk", "Tenant")
    postgres = schema_editor.connection.vendor == "postgresql"
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        if postgres:
            with schema_editor.connection.cursor() as cursor:
                cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
        work(tenant_id)
    if postgres and hasattr(schema_editor.connection, "forget_tenant_setting"):
        schema_editor.connection.forget_tenant_setting()


def forwards(apps: Any, schema_editor: Any) -> None:
    per_tenant(apps, schema_editor, lambda tenant_id: move_to_columns(apps, tenant_id))


def move_to_columns(apps: Any, tenant_id: int) -> None:
    Message = apps.get_model("tickets", "Message")
    ChannelAccount = apps.get_model("channels_in", "ChannelAccount")
    accounts = dict(
        ChannelAccount._base_manager.filter(tenant_id=tenant_id).values_list("pk", "tenant_id")
    )
    batch = []
    rows = Message._base_manager.filter(
        tenant_id=tenant_id, metadata__has_any_keys=list(MOVED)
    ).only("pk", "tenant_id", "metadata")
    for message in rows.iterator(chunk_size=2000):
        meta = dict(message.metadata or {})
        account_id = meta.pop("account_id", None)
        # Only an account of the message's own merchant: the same-tenant guard would refuse
        # anything else, and such a value could only be a bug.
        message.channel_account_id = (
            account_id if accounts.get(account_id) == message.tenant_id else None
        )
        message.conversation_id = str(meta.pop("conversation_id", "") or "")[:255]
        message.then_status = str(meta.pop("then_status", "") or "")[:16]
        message.status_when_written = str(meta.pop("status_when_written", "") or "")[:16]
        message.metadata = meta
        batch.append(message)
        if len(batch) >= 2000:
            _save(Message, batch)
            batch = []
    _save(Message, batch)


def _save(Message: Any, batch: list[Any]) -> None:
    Message._base_manager.bulk_update(
        batch,
        ["channel_account", "conversation_id", "then_status", "status_when_written", "metadata"],
    )


def backwards(apps: Any, schema_editor: Any) -> None:
    per_tenant(apps, schema_editor, lambda tenant_id: move_to_metadata(apps, tenant_id))


def move_to_metadata(apps: Any, tenant_id: int) -> None:
    Message = apps.get_model("tickets", "Message")
    batch = []
    rows = Message._base_manager.filter(tenant_id=tenant_id).exclude(
        channel_account=None, conversation_id="", then_status=""
    )
    for message in rows.iterator(chunk_size=2000):
        meta = dict(message.metadata or {})
        if message.channel_account_id:
            meta["account_id"] = message.channel_account_id
        for key in ("conversation_id", "then_status", "status_when_written"):
            if getattr(message, key):
                meta[key] = getattr(message, key)
        message.metadata = meta
        batch.append(message)
    Message._base_manager.bulk_update(batch, ["metadata"])


class Migration(migrations.Migration):
    dependencies = [("tickets", "0004_channel_columns_and_events")]

    operations = [migrations.RunPython(forwards, backwards)]
