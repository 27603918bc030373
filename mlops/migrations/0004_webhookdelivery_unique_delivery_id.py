"""Every row has its own delivery id now: make it unique, with a uuid4 default for new rows."""

import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mlops", "0003_webhookdelivery_fill_delivery_id"),
    ]

    operations = [
        migrations.AlterField(
            model_name="webhookdelivery",
            name="delivery_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
