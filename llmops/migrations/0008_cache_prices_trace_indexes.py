from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmops", "0007_llm_monitors")]

    operations = []
