"""Prompt-cache prices (issue 15) and indexes for the trace list's latency and cost filters.

The indexes let the list's range filters read only the matching traces (and count them from the index)
instead of walking every trace newest first; see STATISTICS below for why the histogram is made finer.

Cache prices are USD per 1M input tokens read from / written to the provider's prompt cache; empty
means priced as input tokens. The seeded entries of 0002 get the list prices published for them
(2025): OpenAI bills cached input at a fraction of the input price and cache writes as input;
Anthropic bills 5-minute cache writes at 1.25x and cache reads at 0.1x the input price; Google bills
Gemini 1.5 context-cache reads at a quarter of the input price (storage per hour is not per token).
An entry an admin already gave cache prices keeps them.
"""

from decimal import Decimal

from django.db import migrations, models

# model_name -> (cache read, cache write); None: priced as input tokens.
CACHE_PRICES = {
    "gpt-4o": ("1.25", None),
    "gpt-4o-mini": ("0.075", None),
    "gpt-4.1": ("0.50", None),
    "gpt-4.1-mini": ("0.10", None),
    "gpt-4.1-nano": ("0.025", None),
    "o3-mini": ("0.55", None),
    "o4-mini": ("0.275", None),
    "claude-3-5-sonnet*": ("0.30", "3.75"),
    "claude-3-5-haiku*": ("0.08", "1.00"),
    "claude-3-opus*": ("1.50", "18.75"),
    "gemini-1.5-pro*": ("0.3125", None),
    "gemini-1.5-flash*": ("0.01875", None),
}


def _decimal(value):
    return None if value is None else Decimal(value)


def add_cache_prices(apps, schema_editor):
    PriceEntry = apps.get_model("llmops", "PriceEntry")
    for name, (read, write) in CACHE_PRICES.items():
        PriceEntry.objects.filter(
            model_name=name, cache_read_per_million__isnull=True, cache_write_per_million__isnull=True
        ).update(cache_read_per_million=_decimal(read), cache_write_per_million=_decimal(write))


# The trace list's range filters ask for the slow or costly tail ("latency >= 10 s": well under 1 % of
# traces). With the default statistics target the planner smears the top 1 % of values over one
# histogram bucket, guesses ten times too many rows, and walks the whole start-time index instead of
# reading the few matching rows; a finer histogram on these two columns lets it see the tail.
STATISTICS = "ALTER TABLE llmops_trace ALTER COLUMN latency_ms SET STATISTICS {0}, ALTER COLUMN cost SET STATISTICS {0}"


def finer_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STATISTICS.format(1000))


def default_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STATISTICS.format(-1))


def _cache_price(help_text):
    return models.DecimalField(blank=True, decimal_places=6, help_text=help_text, max_digits=14, null=True)


READ = "USD per 1M input tokens read from the prompt cache; empty: priced as input tokens."
WRITE = "USD per 1M input tokens written to the prompt cache; empty: priced as input tokens."


class Migration(migrations.Migration):
    dependencies = [("llmops", "0007_llm_monitors")]

    operations = [
        migrations.AddField(model_name="priceentry", name="cache_read_per_million", field=_cache_price(READ)),
        migrations.AddField(model_name="priceentry", name="cache_write_per_million", field=_cache_price(WRITE)),
        migrations.AddField(model_name="llmmodel", name="cache_read_per_million", field=_cache_price(READ)),
        migrations.AddField(model_name="llmmodel", name="cache_write_per_million", field=_cache_price(WRITE)),
        migrations.RunPython(add_cache_prices, migrations.RunPython.noop),
        migrations.AddIndex(model_name="trace", index=models.Index(fields=["latency_ms"], name="llmops_trace_latency")),
        migrations.AddIndex(model_name="trace", index=models.Index(fields=["cost"], name="llmops_trace_cost")),
        migrations.RunPython(finer_statistics, default_statistics),
    ]
