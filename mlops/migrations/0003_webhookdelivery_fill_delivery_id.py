"""Fill the new delivery ids (one uuid4 per row) and targets of existing rows, before the ids become unique.

A migration of its own: PostgreSQL cannot alter a table in the transaction that updated its rows.
"""

import uuid

from django.db import migrations
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    WebhookDelivery = apps.get_model("mlops", "WebhookDelivery")
    Webhook = apps.get_model("mlops", "Webhook")
    WebhookDelivery.objects.update(target=Subquery(Webhook.objects.filter(pk=OuterRef("webhook_id")).values("url")[:1]))
    batch = []
    for row in WebhookDelivery.objects.filter(delivery_id__isnull=True).only("pk").iterator(chunk_size=1000):
        row.delivery_id = uuid.uuid4()
        batch.append(row)
        if len(batch) == 1000:
            WebhookDelivery.objects.bulk_update(batch, ["delivery_id"])
            batch = []
    WebhookDelivery.objects.bulk_update(batch, ["delivery_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("mlops", "0002_webhookdelivery_outbox"),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
