"""The troubleshooting context of incidents (issue 13). Filled in as the models land; kept in this order so the migrations stay linear."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0016_runbooks"),
    ]

    operations = []
