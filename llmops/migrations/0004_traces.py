from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmops", "0003_provider_last_test")]

    operations = []
