from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmops", "0009_review_queue_fill")]

    operations = []
