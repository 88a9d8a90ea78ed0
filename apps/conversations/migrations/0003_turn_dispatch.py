"""Turn.dispatched_at (the outbox marker the dispatcher sweeps) and Message.idempotency_key."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0002_turn_budget_reservation"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="idempotency_key",
            field=models.CharField(blank=True, default="", max_length=128),
        ),
        migrations.AddField(
            model_name="turn",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="turn",
            index=models.Index(
                condition=models.Q(("dispatched_at__isnull", True), ("status", "queued")),
                fields=["updated_at"],
                name="turn_undispatched",
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key", ""), _negated=True),
                fields=("session", "idempotency_key"),
                name="message_idempotency_key",
            ),
        ),
    ]
