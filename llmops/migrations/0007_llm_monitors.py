from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmops", "0006_online_evaluation")]

    operations = []
