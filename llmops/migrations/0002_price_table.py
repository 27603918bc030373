"""The built-in price table (USD per 1M tokens, list prices as published in 2025); admins edit it in the UI.

Entries ending in * match every model name with that prefix. Self-hosted models cost nothing per token.
"""

from decimal import Decimal

from django.db import migrations

PRICES = [
    ("gpt-4o", "2.50", "10.00"),
    ("gpt-4o-mini", "0.15", "0.60"),
    ("gpt-4.1", "2.00", "8.00"),
    ("gpt-4.1-mini", "0.40", "1.60"),
    ("gpt-4.1-nano", "0.10", "0.40"),
    ("o3-mini", "1.10", "4.40"),
    ("o4-mini", "1.10", "4.40"),
    ("gpt-3.5-turbo", "0.50", "1.50"),
    ("claude-3-5-sonnet*", "3.00", "15.00"),
    ("claude-3-5-haiku*", "0.80", "4.00"),
    ("claude-3-opus*", "15.00", "75.00"),
    ("gemini-1.5-pro*", "1.25", "5.00"),
    ("gemini-1.5-flash*", "0.075", "0.30"),
    ("mistral-large*", "2.00", "6.00"),
    ("mistral-small*", "0.20", "0.60"),
    ("llama3*", "0", "0"),
    ("qwen*", "0", "0"),
]


def add_prices(apps, schema_editor):
    PriceEntry = apps.get_model("llmops", "PriceEntry")
    for name, price_in, price_out in PRICES:
        PriceEntry.objects.get_or_create(
            model_name=name,
            defaults={"input_per_million": Decimal(price_in), "output_per_million": Decimal(price_out)},
        )


class Migration(migrations.Migration):
    dependencies = [("llmops", "0001_initial")]

    operations = [migrations.RunPython(add_prices, migrations.RunPython.noop)]
