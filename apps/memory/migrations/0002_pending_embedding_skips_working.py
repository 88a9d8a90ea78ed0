"""Working memory is never embedded, so the queue of rows waiting for a vector leaves it out."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0001_initial"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="memoryentry",
            name="memory_pending_embedding",
        ),
        migrations.AddIndex(
            model_name="memoryentry",
            index=models.Index(
                condition=models.Q(("embedding__isnull", True), models.Q(("kind", "working"), _negated=True)),
                fields=["created_at"],
                name="memory_pending_embedding",
            ),
        ),
    ]
