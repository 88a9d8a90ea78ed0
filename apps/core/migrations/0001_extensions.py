from __future__ import annotations

from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """PostgreSQL extensions the platform relies on: pgvector for memory embeddings."""

    initial = True
    dependencies: list = []
    operations = [VectorExtension()]
