"""Every row has its own delivery id now: make it unique, with a uuid4 default for new rows."""

import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0007_notification_fill_delivery_id"),
    ]

    operations = [
        migrations.AlterField(
            model_name="notification",
            name="delivery_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
