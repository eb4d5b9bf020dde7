"""Account settings (a logo, the languages customers are answered in), the whole-merchant data
export, and deleting a merchant after a grace period, with a record of the deletion kept."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import helpdesk.models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0007_api"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="logo",
            field=models.ImageField(
                blank=True, max_length=255, upload_to=helpdesk.models.tenant_logo_path
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="customer_languages",
            field=models.JSONField(blank=True, default=helpdesk.models.default_customer_languages),
        ),
        migrations.AddField(
            model_name="tenant",
            name="deletion_requested_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="tenant",
            name="deletion_due_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="tenant",
            index=models.Index(fields=["deletion_due_at"], name="tenant_deletion_due_idx"),
        ),
        migrations.CreateModel(
            name="TenantExport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Queued"),
                            ("running", "Being written"),
                            ("ready", "Ready"),
                            ("failed", "Failed"),
                            ("expired", "Expired"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("file_path", models.CharField(blank=True, max_length=255)),
                ("size_bytes", models.PositiveBigIntegerField(default=0)),
                ("counts", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
                (
                    "created_by",
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
                        related_name="+",
                        to="helpdesk.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="TenantDeletionRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("former_tenant_id", models.BigIntegerField()),
                ("name", models.CharField(max_length=200)),
                ("slug", models.SlugField(max_length=60)),
                ("requested_at", models.DateTimeField(blank=True, null=True)),
                ("deleted_at", models.DateTimeField(auto_now_add=True)),
                ("row_counts", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "ordering": ["-deleted_at"],
            },
        ),
    ]
