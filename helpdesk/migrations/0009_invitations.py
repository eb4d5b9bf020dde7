"""Merchant signup and onboarding: invitations to join a merchant, the getting-started
checklist's choices, and one account per email address across the platform (a unique index on
the lower-cased email of every user who has one)."""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

EMAIL_INDEX = "user_email_unique_ci"


def _user_table(apps: Any) -> str:
    app_label, model_name = settings.AUTH_USER_MODEL.split(".")
    return apps.get_model(app_label, model_name)._meta.db_table


def add_unique_email_index(apps: Any, schema_editor: Any) -> None:
    """The same SQL on PostgreSQL and SQLite: a partial unique index on lower(email)."""
    table = schema_editor.quote_name(_user_table(apps))
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT lower(email) FROM {table} WHERE email <> '' "
            "GROUP BY lower(email) HAVING count(*) > 1"
        )
        shared = [row[0] for row in cursor.fetchall()]
    if shared:
        raise RuntimeError(
            "One account per email: these addresses belong to more than one user; merge or "
            f"change them (the admin's Users page), then migrate again: {', '.join(shared)}"
        )
    schema_editor.execute(
        f"CREATE UNIQUE INDEX {EMAIL_INDEX} ON {table} (lower(email)) WHERE email <> ''"
    )


def drop_unique_email_index(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(f"DROP INDEX IF EXISTS {EMAIL_INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0008_account_settings"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(add_unique_email_index, drop_unique_email_index, elidable=False),
        migrations.CreateModel(
            name="Invitation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("email", models.EmailField(max_length=254)),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("owner", "Owner"),
                            ("admin", "Admin"),
                            ("supervisor", "Supervisor"),
                            ("agent", "Agent"),
                        ],
                        default="agent",
                        max_length=20,
                    ),
                ),
                ("token_hash", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("sent_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("accepted_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "accepted_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "invited_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="invitations",
                        to="helpdesk.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
                "indexes": [
                    models.Index(
                        fields=["tenant", "accepted_at", "revoked_at"],
                        name="invitation_pending_idx",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="OnboardingProgress",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("skipped_steps", models.JSONField(blank=True, default=list)),
                ("dismissed_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
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
                        fields=("tenant",), name="onboardingprogress_one_per_tenant"
                    )
                ],
            },
        ),
    ]
