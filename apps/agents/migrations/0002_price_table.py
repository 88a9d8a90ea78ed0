"""Seed the platform-wide price table.

Prices are USD per million tokens (input, output), the vendors' public list prices when this was
written. They change: operators edit them in the admin (Agents > Model prices). Re-running this
migration (a fresh database, or after a rollback) resets the listed rows by model_id and leaves
any other row alone.
"""

from decimal import Decimal

from django.db import migrations

# model_id: (provider_kind, input $/Mtok, output $/Mtok, context window, tools, vision)
PRICES = {
    # OpenAI
    "gpt-4o": ("openai", "2.50", "10.00", 128_000, True, True),
    "gpt-4o-mini": ("openai", "0.15", "0.60", 128_000, True, True),
    "gpt-4.1": ("openai", "2.00", "8.00", 1_047_576, True, True),
    "gpt-4.1-mini": ("openai", "0.40", "1.60", 1_047_576, True, True),
    "gpt-4.1-nano": ("openai", "0.10", "0.40", 1_047_576, True, True),
    "o3-mini": ("openai", "1.10", "4.40", 200_000, True, False),
    "o4-mini": ("openai", "1.10", "4.40", 200_000, True, True),
    # Anthropic
    "claude-3-5-haiku-latest": ("anthropic", "0.80", "4.00", 200_000, True, False),
    "claude-3-7-sonnet-latest": ("anthropic", "3.00", "15.00", 200_000, True, True),
    "claude-sonnet-4-0": ("anthropic", "3.00", "15.00", 200_000, True, True),
    "claude-opus-4-0": ("anthropic", "15.00", "75.00", 200_000, True, True),
    # The built-in offline model: free, and it "handles" images by saying it cannot see them.
    "offline-small": ("offline", "0", "0", 32_768, True, True),
}


def seed_prices(apps, _schema_editor):
    ModelPrice = apps.get_model("agents", "ModelPrice")
    for model_id, (kind, input_price, output_price, context_window, tools, vision) in PRICES.items():
        ModelPrice.objects.update_or_create(
            model_id=model_id,
            defaults={
                "provider_kind": kind,
                "input_per_mtok": Decimal(input_price),
                "output_per_mtok": Decimal(output_price),
                "context_window": context_window,
                "supports_tools": tools,
                "supports_vision": vision,
                "supports_streaming": True,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]

    # Reversing keeps the rows: they may have been edited, and 0001's reversal drops the table anyway.
    operations = [migrations.RunPython(seed_prices, migrations.RunPython.noop)]
