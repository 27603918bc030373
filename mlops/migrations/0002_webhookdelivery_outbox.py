"""Webhook deliveries become rows of the shared outbox (opsportal.outbox): a delivery id (sent as
X-OpsPortal-Delivery instead of the row id), the target, `sent_at` for `delivered_at`, and the
outbox's partial index of pending rows in place of the (status, next attempt) index.

The unique delivery id is added without the constraint, filled row by row, then made unique in
the next two migrations (one default for the whole table would give every existing row the same id).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mlops", "0001_initial"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="webhookdelivery",
            name="webhookdelivery_due_idx",
        ),
        migrations.RenameField(
            model_name="webhookdelivery",
            old_name="delivered_at",
            new_name="sent_at",
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="delivery_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="target",
            field=models.TextField(blank=True, help_text="Where it goes: a URL (or, for email, the addresses)."),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="event",
            field=models.CharField(help_text="Sent as X-OpsPortal-Event.", max_length=30),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="last_error",
            field=models.TextField(blank=True),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="payload",
            field=models.JSONField(blank=True, default=dict, help_text="The JSON document sent (the last one sent)."),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status", "pending")), fields=["created_at"], name="webhookdelivery_pending_idx"
            ),
        ),
    ]
