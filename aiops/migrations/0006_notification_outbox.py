"""Notifications become rows of the shared outbox (opsportal.outbox): a delivery id, the target and payload sent.

The unique delivery id is added without the constraint, filled row by row, then made unique in
the next two migrations (one default for the whole table would give every existing row the same id).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0005_integration_internal_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="delivery_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="notification",
            name="payload",
            field=models.JSONField(blank=True, default=dict, help_text="The JSON document sent (the last one sent)."),
        ),
        migrations.AddField(
            model_name="notification",
            name="target",
            field=models.TextField(blank=True, help_text="Where it goes: a URL (or, for email, the addresses)."),
        ),
        migrations.AlterField(
            model_name="notification",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="notification",
            name="response_code",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
    ]
