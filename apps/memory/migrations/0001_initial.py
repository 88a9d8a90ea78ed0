"""The memory table. The vector width and the HNSW build parameters come from settings
(EMBEDDING_DIMENSIONS, MEMORY_HNSW_M, MEMORY_HNSW_EF_CONSTRUCTION) when this runs; docs/memory.md
says how to change them on an existing database."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models

import apps.core.ids
import apps.memory.indexes


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("agents", "0002_price_table"),
        ("conversations", "0001_initial"),
        ("core", "0001_extensions"),  # the vector extension
        ("tenancy", "0003_audit_actions_for_agents"),
    ]

    operations = [
        migrations.CreateModel(
            name="MemoryEntry",
            fields=[
                (
                    "id",
                    models.UUIDField(default=apps.core.ids.new_id, editable=False, primary_key=True, serialize=False),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("working", "Working (one session, expires)"),
                            ("episodic", "Episodic (what happened in a turn)"),
                            ("semantic", "Semantic (facts)"),
                        ],
                        max_length=16,
                    ),
                ),
                ("collection", models.CharField(max_length=64)),
                (
                    "category",
                    models.CharField(blank=True, help_text="For semantic facts, e.g. preferences.", max_length=64),
                ),
                ("content", models.TextField()),
                ("summary", models.TextField(blank=True)),
                ("keywords", models.JSONField(blank=True, default=list)),
                ("keywords_text", models.TextField(blank=True, editable=False)),
                ("topic", models.CharField(blank=True, max_length=200)),
                ("importance", models.FloatField(default=0.5)),
                ("metadata", models.JSONField(blank=True, default=dict)),
                (
                    "embedding",
                    pgvector.django.vector.VectorField(
                        blank=True, dimensions=settings.EMBEDDING_DIMENSIONS, editable=False, null=True
                    ),
                ),
                ("embedding_model", models.CharField(blank=True, editable=False, max_length=200)),
                (
                    "search_vector",
                    models.GeneratedField(
                        db_persist=True,
                        expression=django.contrib.postgres.search.CombinedSearchVector(
                            django.contrib.postgres.search.CombinedSearchVector(
                                django.contrib.postgres.search.CombinedSearchVector(
                                    django.contrib.postgres.search.CombinedSearchVector(
                                        django.contrib.postgres.search.SearchVector(
                                            "topic", config="english", weight="A"
                                        ),
                                        "||",
                                        django.contrib.postgres.search.SearchVector(
                                            "category", config="english", weight="A"
                                        ),
                                        django.contrib.postgres.search.SearchConfig("english"),
                                    ),
                                    "||",
                                    django.contrib.postgres.search.SearchVector(
                                        "keywords_text", config="english", weight="A"
                                    ),
                                    django.contrib.postgres.search.SearchConfig("english"),
                                ),
                                "||",
                                django.contrib.postgres.search.SearchVector("summary", config="english", weight="B"),
                                django.contrib.postgres.search.SearchConfig("english"),
                            ),
                            "||",
                            django.contrib.postgres.search.SearchVector("content", config="english", weight="C"),
                            django.contrib.postgres.search.SearchConfig("english"),
                        ),
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                ),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("source_key", models.CharField(blank=True, editable=False, max_length=200)),
                (
                    "agent",
                    models.ForeignKey(
                        blank=True,
                        help_text="Empty: tenant-wide memory every agent of the tenant recalls.",
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="agents.agent",
                    ),
                ),
                (
                    "session",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="conversations.chatsession",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenancy.tenant"
                    ),
                ),
                (
                    "turn",
                    models.ForeignKey(
                        blank=True,
                        help_text="The turn that wrote this entry, for entries the agent loop records.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="conversations.turn",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "memory entries",
                "ordering": ["-created_at"],
                "indexes": [
                    apps.memory.indexes.HalfvecHnswIndex(
                        dimensions=settings.EMBEDDING_DIMENSIONS,
                        ef_construction=settings.MEMORY_HNSW_EF_CONSTRUCTION,
                        field="embedding",
                        m=settings.MEMORY_HNSW_M,
                        name="memory_embedding_hnsw",
                    ),
                    django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="memory_search_vector_gin"),
                    models.Index(fields=["tenant", "kind", "-created_at"], name="memory_tenant_kind_recent"),
                    models.Index(fields=["tenant", "collection", "-created_at"], name="memory_tenant_coll_recent"),
                    models.Index(fields=["tenant", "agent"], name="memory_tenant_agent"),
                    models.Index(
                        condition=models.Q(("category", ""), _negated=True),
                        fields=["tenant", "category"],
                        name="memory_tenant_category",
                    ),
                    models.Index(fields=["session", "kind"], name="memory_session_kind"),
                    models.Index(
                        condition=models.Q(("embedding__isnull", True)),
                        fields=["created_at"],
                        name="memory_pending_embedding",
                    ),
                    models.Index(
                        condition=models.Q(("expires_at__isnull", False)), fields=["expires_at"], name="memory_expiring"
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("importance__gte", 0), ("importance__lte", 1)),
                        name="memory_importance_0_to_1",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["working", "episodic", "semantic"])), name="memory_kind_valid"
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("source_key", ""), _negated=True),
                        fields=("tenant", "source_key"),
                        name="memory_unique_source_key",
                    ),
                ],
            },
        ),
        # Keep vectors in the row (not TOAST) even when content is long: exact scans and result
        # distances read them for every row, and a TOAST fetch per row would multiply that cost.
        migrations.RunSQL(
            "ALTER TABLE memory_memoryentry ALTER COLUMN embedding SET STORAGE MAIN",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
