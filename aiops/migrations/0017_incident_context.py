"""The troubleshooting context of incidents (issue 13). Filled in as the models land; kept in this order so the migrations stay linear."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0016_runbooks"),
    ]

    operations = [
        migrations.CreateModel(
            name="IncidentContext",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("items", models.JSONField(blank=True, default=list)),
                ("window_start", models.DateTimeField()),
                ("window_end", models.DateTimeField()),
                ("refreshed_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "incident",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="context", to="aiops.incident"
                    ),
                ),
            ],
            options={
                "verbose_name": "incident context",
            },
        ),
    ]
