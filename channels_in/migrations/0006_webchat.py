"""Live web chat: the widget channel and its visitors (issue 21)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels_in", "0005_wechat"),
        ("helpdesk", "0005_workspace"),
    ]

    operations = [
        migrations.CreateModel(
            name="WebChat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("public_key", models.CharField(max_length=120, unique=True)),
                ("previous_public_key", models.CharField(blank=True, max_length=120)),
                ("previous_key_valid_until", models.DateTimeField(blank=True, null=True)),
                ("allowed_origins", models.JSONField(blank=True, default=list)),
                ("prechat_fields", models.JSONField(blank=True, default=list)),
                ("prechat_required", models.JSONField(blank=True, default=list)),
                ("persona_group_ids", models.JSONField(blank=True, default=list)),
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webchat",
                        to="channels_in.channelaccount",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="helpdesk.tenant",
                    ),
                ),
            ],
            options={
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="ChatVisitor",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("visitor_id", models.CharField(max_length=64)),
                ("name", models.CharField(blank=True, max_length=200)),
                ("email", models.EmailField(blank=True, max_length=254)),
                ("phone", models.CharField(blank=True, max_length=32)),
                ("order_number", models.CharField(blank=True, max_length=64)),
                ("persona", models.SlugField(blank=True, max_length=40)),
                ("language", models.CharField(blank=True, max_length=16)),
                ("last_seen_at", models.DateTimeField(blank=True, null=True)),
                ("left_at", models.DateTimeField(blank=True, null=True)),
                ("visitor_read_at", models.DateTimeField(blank=True, null=True)),
                ("agent_read_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="visitors",
                        to="channels_in.channelaccount",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="helpdesk.tenant",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "visitor_id"), name="chat_visitor_unique"
                    )
                ],
            },
        ),
    ]
