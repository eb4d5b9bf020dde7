"""Forwarding addresses: every channel gets an unguessable token for its
"<merchant>+<token>@<inbound domain>" address, and mail can arrive by the SMTP service."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import migrations, models

import channels_in.models


def give_every_channel_a_token(apps: Any, schema_editor: Any) -> None:
    """One token per existing channel, merchant by merchant: row-level security binds the
    owner too (FORCE), so a migration sees a merchant's rows only with its tenant set."""
    Tenant = apps.get_model("helpdesk", "Tenant")
    ChannelAccount = apps.get_model("channels_in", "ChannelAccount")
    connection = schema_editor.connection
    postgres = connection.vendor == "postgresql"
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
        for account in ChannelAccount._base_manager.filter(
            tenant_id=tenant_id, forwarding_token=""
        ):
            account.forwarding_token = secrets.token_hex(10)
            account.save(update_fields=["forwarding_token"])
    if postgres and hasattr(connection, "forget_tenant_setting"):
        connection.forget_tenant_setting()


class Migration(migrations.Migration):
    dependencies = [
        ("channels_in", "0007_phone"),
        ("helpdesk", "0006_phone"),
    ]

    operations = [
        migrations.AddField(
            model_name="channelaccount",
            name="forwarding_token",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.RunPython(give_every_channel_a_token, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="channelaccount",
            name="forwarding_token",
            field=models.CharField(
                default=channels_in.models.new_forwarding_token, max_length=32, unique=True
            ),
        ),
        migrations.AddField(
            model_name="channelaccount",
            name="previous_forwarding_token",
            field=models.CharField(blank=True, db_index=True, max_length=32),
        ),
        migrations.AddField(
            model_name="channelaccount",
            name="previous_forwarding_valid_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="rawinbound",
            name="source",
            field=models.CharField(
                choices=[
                    ("webhook", "Webhook"),
                    ("imap", "IMAP"),
                    ("import", "Import"),
                    ("smtp", "Forwarding address"),
                ],
                max_length=10,
            ),
        ),
    ]
