from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmops", "0004_traces")]

    operations = []
