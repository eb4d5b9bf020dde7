"""WeChat Official Account channels (issue 20)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels_in", "0004_raw_envelope_and_api_channel"),
        ("helpdesk", "0005_workspace"),
    ]

    operations = [
        migrations.CreateModel(
            name="WeChatAccount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("app_id", models.CharField(max_length=32)),
                ("token", models.CharField(max_length=32)),
                ("encoding_aes_key_encrypted", models.TextField(blank=True)),
                ("app_secret_encrypted", models.TextField(blank=True)),
                ("verified_at", models.DateTimeField(blank=True, null=True)),
                ("account", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="wechat", to="channels_in.channelaccount")),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="helpdesk.tenant")),
            ],
            options={
                "abstract": False,
            },
        ),
    ]
