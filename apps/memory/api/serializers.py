"""Shapes of the memory API: entries, search results, episodes (the reference API's shape), and the
query parameters and bodies the views accept."""

from __future__ import annotations

from rest_framework import serializers

from apps.memory.models import NAME_PATTERN, MemoryEntry, MemoryKind
from apps.memory.search import K_MAX, MATCH_TYPES, MODES


def _name_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        rf"^{NAME_PATTERN}$",
        error_messages={"invalid": "Use 1-64 letters, digits, '_' or '-'."},
        **kwargs,
    )


# --- output ---------------------------------------------------------------------------------------------


class MemoryEntrySerializer(serializers.ModelSerializer):
    agent = serializers.SerializerMethodField(help_text="The agent's name; null for tenant-wide memory.")
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    session_id = serializers.UUIDField(read_only=True, allow_null=True)
    turn_id = serializers.UUIDField(read_only=True, allow_null=True)
    embedded = serializers.SerializerMethodField(
        help_text="False until the background task has embedded it; always false for working memory (never embedded)."
    )

    class Meta:
        model = MemoryEntry
        fields = [
            "id",
            "kind",
            "collection",
            "category",
            "content",
            "summary",
            "keywords",
            "topic",
            "importance",
            "metadata",
            "agent",
            "agent_id",
            "session_id",
            "turn_id",
            "embedded",
            "embedding_model",
            "created_at",
            "expires_at",
        ]
        read_only_fields = fields

    def get_agent(self, entry) -> str | None:
        agent = getattr(entry, "agent", None) if entry.agent_id else None
        return agent.name if agent is not None else None

    def get_embedded(self, entry) -> bool:
        return bool(entry.embedding_model)


class SearchResultSerializer(MemoryEntrySerializer):
    score = serializers.FloatField(help_text="vector: cosine similarity; keyword: ts_rank_cd (0..1); hybrid: RRF.")
    matchType = serializers.ChoiceField(choices=list(MATCH_TYPES), help_text="Which search found it; hybrid: both.")  # noqa: N815 - the reference API's name
    similarity = serializers.FloatField(allow_null=True, help_text="Cosine similarity when the vector search found it.")

    class Meta(MemoryEntrySerializer.Meta):
        fields = [*MemoryEntrySerializer.Meta.fields, "score", "matchType", "similarity"]
        read_only_fields = fields


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    mode = serializers.ChoiceField(choices=list(MODES))
    k = serializers.IntegerField()
    count = serializers.IntegerField()
    results = SearchResultSerializer(many=True)


class EpisodeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    summary = serializers.CharField()
    content = serializers.CharField()
    keywords = serializers.ListField(child=serializers.CharField())
    topic = serializers.CharField()
    timestamp = serializers.DateTimeField(help_text="When the exchange happened.")
    importance = serializers.FloatField()
    type = serializers.CharField(help_text="Always `episodic`.")
    score = serializers.FloatField(allow_null=True, help_text="Relevance to `q`; the importance when listing.")
    matchType = serializers.ChoiceField(  # noqa: N815 - the reference API's name
        choices=list(MATCH_TYPES), allow_null=True, help_text="How `q` matched; null when listing."
    )
    session_id = serializers.UUIDField(allow_null=True)
    agent = serializers.CharField(allow_null=True)


class EpisodesResponseSerializer(serializers.Serializer):
    episodes = EpisodeSerializer(many=True)
    count = serializers.IntegerField(help_text="Episodes in this answer.")
    available = serializers.IntegerField(help_text="Episodic entries the tenant has in all.")


class FactsResponseSerializer(serializers.Serializer):
    facts = MemoryEntrySerializer(many=True)
    count = serializers.IntegerField()
    available = serializers.IntegerField()


class CategoryFactsResponseSerializer(serializers.Serializer):
    category = serializers.CharField()
    facts = MemoryEntrySerializer(many=True)
    count = serializers.IntegerField()


class NamedCountSerializer(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField()


class CategoriesResponseSerializer(serializers.Serializer):
    categories = NamedCountSerializer(many=True)
    count = serializers.IntegerField()


class CollectionSerializer(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField()
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=MemoryKind.choices))


class CollectionsResponseSerializer(serializers.Serializer):
    collections = CollectionSerializer(many=True)
    count = serializers.IntegerField()


class CollectionEntriesResponseSerializer(serializers.Serializer):
    collection = serializers.CharField()
    entries = MemoryEntrySerializer(many=True)
    count = serializers.IntegerField(help_text="Entries in this page.")
    total = serializers.IntegerField(help_text="Entries in the collection.")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class WorkingMemoryResponseSerializer(serializers.Serializer):
    session_id = serializers.UUIDField(allow_null=True, help_text="Null when listing every session's.")
    items = MemoryEntrySerializer(many=True)
    count = serializers.IntegerField()


class DeletedResponseSerializer(serializers.Serializer):
    collection = serializers.CharField()
    deleted = serializers.IntegerField()


class EmbedderSerializer(serializers.Serializer):
    backend = serializers.ChoiceField(choices=["minilm", "openai", "hashing"])
    configured = serializers.CharField(help_text="EMBEDDING_BACKEND as set (auto picks minilm or hashing).")
    model = serializers.CharField()
    dimensions = serializers.IntegerField()
    loaded = serializers.BooleanField(help_text="Whether this web process has loaded the model.")
    runtime = serializers.ChoiceField(
        choices=["onnx", "torch"],
        allow_null=True,
        help_text="The local model's runtime (EMBEDDING_RUNTIME): the one loaded, else the one tried first; "
        "null for other backends.",
    )


class StatsResponseSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_kind = serializers.DictField(child=serializers.IntegerField())
    collections = serializers.IntegerField()
    agents = serializers.IntegerField(help_text="Agents with memories of their own.")
    pending_embeddings = serializers.IntegerField(help_text="Entries waiting for the background embedding.")
    other_model_embeddings = serializers.IntegerField(
        help_text="Entries embedded by another model than the configured one (run `manage.py reembed`)."
    )
    embedder = EmbedderSerializer()


# --- input ------------------------------------------------------------------------------------------------


class LimitQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)


class ListQuerySerializer(LimitQuerySerializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=2000, help_text="Rank by relevance to this.")
    mode = serializers.ChoiceField(choices=list(MODES), default="hybrid")


class PageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    offset = serializers.IntegerField(min_value=0, default=0)


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=2000)
    mode = serializers.ChoiceField(choices=list(MODES), default="hybrid")
    k = serializers.IntegerField(min_value=1, max_value=K_MAX, default=10)
    agent = serializers.CharField(required=False, max_length=128, help_text="Name or id: its memories and tenant-wide.")
    session_id = serializers.UUIDField(required=False)
    kind = serializers.ChoiceField(choices=MemoryKind.choices, required=False)
    collection = _name_field(required=False)
    category = _name_field(required=False)


class QueryBodySerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    k = serializers.IntegerField(min_value=1, max_value=K_MAX, default=10)
    collection = _name_field(required=False)
    mode = serializers.ChoiceField(choices=list(MODES), default="hybrid")


class EntryCreateSerializer(serializers.Serializer):
    content = serializers.CharField(max_length=20000)
    kind = serializers.ChoiceField(choices=MemoryKind.choices, default=MemoryKind.SEMANTIC)
    collection = _name_field(required=False, help_text="Default: the kind's name.")
    category = _name_field(required=False)
    summary = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    keywords = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=32, allow_empty=True
    )
    topic = serializers.CharField(required=False, allow_blank=True, max_length=200)
    importance = serializers.FloatField(required=False, min_value=0.0, max_value=1.0, default=0.5)
    metadata = serializers.DictField(required=False)
    agent = serializers.CharField(required=False, max_length=128, help_text="Name or id; omit for tenant-wide.")
    session_id = serializers.UUIDField(required=False, help_text="Required for working memory.")
    expires_at = serializers.DateTimeField(required=False)


class DeleteBodySerializer(serializers.Serializer):
    entry_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=1000)
