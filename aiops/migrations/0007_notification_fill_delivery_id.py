"""Fill the new delivery ids (one uuid4 per row) and targets of existing rows, before the ids become unique.

A migration of its own: PostgreSQL cannot alter a table in the transaction that updated its rows.
"""

import uuid

from django.db import migrations
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    Notification = apps.get_model("aiops", "Notification")
    NotificationChannel = apps.get_model("aiops", "NotificationChannel")
    Notification.objects.update(
        target=Subquery(NotificationChannel.objects.filter(pk=OuterRef("channel_id")).values("target")[:1])
    )
    batch = []
    for row in Notification.objects.filter(delivery_id__isnull=True).only("pk").iterator(chunk_size=1000):
        row.delivery_id = uuid.uuid4()
        batch.append(row)
        if len(batch) == 1000:
            Notification.objects.bulk_update(batch, ["delivery_id"])
            batch = []
    Notification.objects.bulk_update(batch, ["delivery_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0006_notification_outbox"),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
