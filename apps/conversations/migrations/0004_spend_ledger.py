"""The monthly spend ledger (budgets.budget_settle writes it), backfilled from the Turn rows."""

from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models


def backfill_spend_ledger(apps, schema_editor):
    """One row per (tenant, API key, month of the turn's creation, UTC) with the turns' summed
    cost. `calls` counts model steps (one call each), the closest the Turn rows record.
    Re-running replaces the totals rather than adding to them, so it is idempotent."""
    ledger = apps.get_model("conversations", "SpendLedger")._meta.db_table
    turn = apps.get_model("conversations", "Turn")._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {ledger} (tenant_id, api_key_id, month, cost_usd, calls, updated_at)
            SELECT tenant_id, api_key_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date,
                   SUM(cost_usd), SUM(step_count), now()
            FROM {turn}
            WHERE cost_usd <> 0
            GROUP BY 1, 2, 3
            ON CONFLICT (tenant_id, month, api_key_id)
            DO UPDATE SET cost_usd = EXCLUDED.cost_usd, calls = EXCLUDED.calls, updated_at = EXCLUDED.updated_at
            """  # noqa: S608 - the table names are the models', not input
        )


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_turn_dispatch"),
        ("tenancy", "0006_apikey_monthly_budget"),
    ]

    operations = [
        migrations.CreateModel(
            name="SpendLedger",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("month", models.DateField(help_text="The first day of the month (UTC).")),
                ("cost_usd", models.DecimalField(decimal_places=6, default=Decimal("0"), max_digits=14)),
                ("calls", models.PositiveIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "api_key",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.RESTRICT,
                        related_name="+",
                        to="tenancy.apikey",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenancy.tenant"
                    ),
                ),
            ],
        ),
        # A separate operation, not in CreateModel's options: there its SQL is deferred to the end
        # of the migration, after the backfill that needs it for ON CONFLICT.
        migrations.AddConstraint(
            model_name="spendledger",
            constraint=models.UniqueConstraint(
                fields=("tenant", "month", "api_key"), name="spend_ledger_unique_per_month", nulls_distinct=False
            ),
        ),
        migrations.RunPython(backfill_spend_ledger, migrations.RunPython.noop),
    ]
