from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmops", "0008_cache_prices_trace_indexes")]

    operations = []
