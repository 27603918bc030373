from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmops", "0005_guardrails")]

    operations = []
