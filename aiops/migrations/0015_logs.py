"""Log records, templates and their state (issue 13). Filled in as the models land; kept in this order so the migrations stay linear."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("aiops", "0014_pair_lag_help"),
    ]

    operations = []
