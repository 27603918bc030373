from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0004_alert_content_hash"),
    ]

    operations = [
        migrations.AddField(
            model_name="integration",
            name="internal_source",
            field=models.CharField(blank=True, db_default="", default="", editable=False, max_length=50),
        ),
        migrations.AddConstraint(
            model_name="integration",
            constraint=models.UniqueConstraint(
                condition=~Q(internal_source=""), fields=("internal_source",), name="integration_one_per_source"
            ),
        ),
    ]
