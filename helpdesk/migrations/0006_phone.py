"""Agents' phone numbers, rung by the phone channel while they are on duty (issue 22)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0005_workspace"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="phone",
            field=models.CharField(blank=True, max_length=20),
        ),
    ]
