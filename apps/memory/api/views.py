"""The memory API: thin views over apps.memory.selectors and services.

Reading needs the viewer role (searching with `POST /api/memory/query` too), writing member,
clearing a collection admin. Collection and category names in paths follow the path-id format;
a collection or category that the caller's tenant has no entries in is a 404, as is an entry or
session of another tenant.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.agents.selectors import agent_resolve
from apps.core.api.views import TenantAPIView
from apps.core.chat_sessions import session_owned
from apps.core.openapi import ERROR_RESPONSES
from apps.memory import selectors, services
from apps.memory.api import serializers as s
from apps.memory.models import MemoryKind
from apps.memory.search import SearchHit
from apps.tenancy.models import Role

TAGS = ["memory"]


def _query(serializer_class, request) -> dict:
    payload = serializer_class(data=request.query_params)
    payload.is_valid(raise_exception=True)
    return payload.validated_data


def _body(serializer_class, request) -> dict:
    payload = serializer_class(data=request.data)
    payload.is_valid(raise_exception=True)
    return payload.validated_data


def _results(hits: list[SearchHit]) -> list[dict]:
    rows = []
    for hit in hits:
        row = s.MemoryEntrySerializer(hit.entry).data
        row.update(
            score=round(hit.score, 6),
            matchType=hit.match_type,
            similarity=None if hit.similarity is None else round(hit.similarity, 6),
        )
        rows.append(row)
    return rows


def _episode(entry, *, score: float | None = None, match_type: str | None = None) -> dict:
    return {
        "id": str(entry.pk),
        "summary": entry.summary,
        "content": entry.content,
        "keywords": entry.keywords,
        "topic": entry.topic,
        "timestamp": entry.created_at.isoformat().replace("+00:00", "Z"),
        "importance": entry.importance,
        "type": entry.kind,
        "score": entry.importance if score is None else round(score, 6),
        "matchType": match_type,
        "session_id": str(entry.session_id) if entry.session_id else None,
        "agent": entry.agent.name if entry.agent_id and entry.agent else None,
    }


class MemoryView(TenantAPIView):
    id_label = "entry"

    def agent_or_400(self, name_or_id: str | None):
        if not name_or_id:
            return None
        agent = agent_resolve(tenant=self.tenant, name_or_id=name_or_id)
        if agent is None:
            raise ValidationError({"agent": ["No such agent."]})
        return agent

    def collection_or_404(self, collection: str) -> str:
        if not selectors.memory_collection_exists(tenant=self.tenant, collection=collection):
            raise Http404
        return collection


# --- working memory ---------------------------------------------------------------------------------------


class WorkingMemoryView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Working memory of every session",
        operation_id="memory_working_list",
        description="Short-lived items the agent loop keeps per session (the latest messages); they end "
        "with the session or after WORKING_MEMORY_TTL. Newest first.",
        parameters=[s.LimitQuerySerializer],
        responses={200: s.WorkingMemoryResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        limit = _query(s.LimitQuerySerializer, request)["limit"]
        items = selectors.working_memory(tenant=self.tenant, limit=limit)
        return Response(
            {"session_id": None, "items": s.MemoryEntrySerializer(items, many=True).data, "count": len(items)}
        )


class SessionWorkingMemoryView(MemoryView):
    id_label = "session"

    @extend_schema(
        tags=TAGS,
        summary="Working memory of one session",
        operation_id="memory_working_session",
        parameters=[s.LimitQuerySerializer],
        responses={200: s.WorkingMemoryResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request, session_id: str):
        session_uuid = self.uuid_or_404(session_id)
        if not session_owned(tenant_id=self.tenant.pk, session_id=session_uuid):
            raise Http404
        limit = _query(s.LimitQuerySerializer, request)["limit"]
        items = selectors.working_memory(tenant=self.tenant, session_id=session_uuid, limit=limit)
        return Response(
            {"session_id": session_id, "items": s.MemoryEntrySerializer(items, many=True).data, "count": len(items)}
        )


# --- episodic and semantic ----------------------------------------------------------------------------------


class EpisodicMemoryView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Episodes: what happened in past turns",
        description="The newest episodes, or with `q` the most relevant ones (hybrid search by default). "
        "`score` is the relevance to `q`, or the importance when listing.",
        parameters=[s.ListQuerySerializer],
        responses={200: s.EpisodesResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        params = _query(s.ListQuerySerializer, request)
        available = selectors.memory_entry_list(tenant=self.tenant, kind=MemoryKind.EPISODIC).count()
        if params.get("q", "").strip():
            hits = selectors.memory_search(
                tenant=self.tenant,
                query=params["q"],
                mode=params["mode"],
                k=params["limit"],
                kinds=(MemoryKind.EPISODIC,),
            )
            episodes = [_episode(h.entry, score=h.score, match_type=h.match_type) for h in hits]
        else:
            entries = selectors.memory_entry_list(tenant=self.tenant, kind=MemoryKind.EPISODIC)[: params["limit"]]
            episodes = [_episode(entry) for entry in entries]
        return Response({"episodes": episodes, "count": len(episodes), "available": available})


class SemanticMemoryView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Facts (semantic memory)",
        operation_id="memory_semantic_list",
        description="The newest facts, or with `q` the most relevant ones.",
        parameters=[s.ListQuerySerializer],
        responses={200: s.FactsResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        params = _query(s.ListQuerySerializer, request)
        available = selectors.memory_entry_list(tenant=self.tenant, kind=MemoryKind.SEMANTIC).count()
        if params.get("q", "").strip():
            hits = selectors.memory_search(
                tenant=self.tenant,
                query=params["q"],
                mode=params["mode"],
                k=params["limit"],
                kinds=(MemoryKind.SEMANTIC,),
            )
            facts = _results(hits)
        else:
            entries = selectors.memory_entry_list(tenant=self.tenant, kind=MemoryKind.SEMANTIC)[: params["limit"]]
            facts = s.MemoryEntrySerializer(entries, many=True).data
        return Response({"facts": facts, "count": len(facts), "available": available})


class SemanticCategoriesView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Categories of facts, with counts",
        responses={200: s.CategoriesResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        categories = selectors.memory_categories(tenant=self.tenant)
        return Response({"categories": categories, "count": len(categories)})


class SemanticCategoryView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Facts in one category",
        operation_id="memory_semantic_category",
        description="404 when the tenant has no facts in that category.",
        parameters=[s.LimitQuerySerializer],
        responses={200: s.CategoryFactsResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request, category: str):
        limit = _query(s.LimitQuerySerializer, request)["limit"]
        entries = list(
            selectors.memory_entry_list(tenant=self.tenant, kind=MemoryKind.SEMANTIC, category=category)[:limit]
        )
        if not entries:
            raise Http404
        return Response(
            {"category": category, "facts": s.MemoryEntrySerializer(entries, many=True).data, "count": len(entries)}
        )


# --- search ---------------------------------------------------------------------------------------------------


class MemorySearchView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Search memory by meaning and by words",
        description="`mode`: `vector` (k-NN on embeddings), `keyword` (full text) or `hybrid` (both, fused by "
        "reciprocal rank fusion, k=60). Each result has `score` and `matchType`. `agent` limits to that "
        "agent's memories plus tenant-wide ones.",
        parameters=[s.SearchQuerySerializer],
        responses={200: s.SearchResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        params = _query(s.SearchQuerySerializer, request)
        hits = selectors.memory_search(
            tenant=self.tenant,
            query=params["q"],
            mode=params["mode"],
            k=params["k"],
            agent=self.agent_or_400(params.get("agent")),
            session_id=params.get("session_id"),
            kinds=(params["kind"],) if params.get("kind") else (),
            collection=params.get("collection", ""),
            category=params.get("category", ""),
        )
        results = _results(hits)
        return Response(
            {"query": params["q"], "mode": params["mode"], "k": params["k"], "count": len(results), "results": results}
        )


class MemoryQueryView(MemoryView):
    required_roles = {"POST": Role.VIEWER}  # a search, not a write

    @extend_schema(
        tags=TAGS,
        summary="Search memory (JSON body)",
        description="The same search as `GET /api/memory/search`, optionally within one collection.",
        request=s.QueryBodySerializer,
        responses={200: s.SearchResponseSerializer, **ERROR_RESPONSES},
    )
    def post(self, request):
        body = _body(s.QueryBodySerializer, request)
        hits = selectors.memory_search(
            tenant=self.tenant,
            query=body["query"],
            mode=body["mode"],
            k=body["k"],
            collection=body.get("collection", ""),
        )
        results = _results(hits)
        return Response(
            {"query": body["query"], "mode": body["mode"], "k": body["k"], "count": len(results), "results": results}
        )


# --- collections and entries -------------------------------------------------------------------------------------


class CollectionsView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Collections, with counts and the kinds in each",
        responses={200: s.CollectionsResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        collections = selectors.memory_collections(tenant=self.tenant)
        return Response({"collections": collections, "count": len(collections)})


class CollectionEntriesView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Entries of a collection, newest first",
        parameters=[s.PageQuerySerializer],
        responses={200: s.CollectionEntriesResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request, collection: str):
        page = _query(s.PageQuerySerializer, request)
        self.collection_or_404(collection)
        entries = selectors.memory_entry_list(tenant=self.tenant, collection=collection)
        rows = list(entries[page["offset"] : page["offset"] + page["limit"]])
        return Response(
            {
                "collection": collection,
                "entries": s.MemoryEntrySerializer(rows, many=True).data,
                "count": len(rows),
                "total": entries.count(),
                "limit": page["limit"],
                "offset": page["offset"],
            }
        )


class EntryCreateView(MemoryView):
    required_roles = {"POST": Role.MEMBER}

    @extend_schema(
        tags=TAGS,
        summary="Add an entry by hand",
        description="Stored at once and embedded in the background (`embedded` turns true within seconds); "
        "keyword search finds it immediately. `kind` defaults to `semantic`; working memory needs a "
        "`session_id`. Without `agent` the entry is tenant-wide.",
        request=s.EntryCreateSerializer,
        responses={201: s.MemoryEntrySerializer, **ERROR_RESPONSES},
    )
    def post(self, request):
        body = _body(s.EntryCreateSerializer, request)
        session_id = body.get("session_id")
        if session_id and not session_owned(tenant_id=self.tenant.pk, session_id=session_id):
            raise ValidationError({"session_id": ["No such session."]})
        entry = services.memory_entry_create(
            tenant=self.tenant,
            content=body["content"],
            kind=body["kind"],
            collection=body.get("collection", ""),
            category=body.get("category", ""),
            summary=body.get("summary", ""),
            keywords=body.get("keywords"),
            topic=body.get("topic", ""),
            importance=body["importance"],
            metadata=body.get("metadata"),
            agent=self.agent_or_400(body.get("agent")),
            session_id=session_id or None,
            expires_at=body.get("expires_at"),
        )
        return Response(s.MemoryEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class EntryDeleteView(MemoryView):
    required_roles = {"DELETE": Role.MEMBER}

    @extend_schema(
        tags=TAGS,
        summary="Delete one entry of a collection",
        responses={204: None, **ERROR_RESPONSES},
    )
    def delete(self, request, collection: str, entry_id: str):
        entry_uuid = self.uuid_or_404(entry_id)
        if not services.memory_entry_delete(tenant=self.tenant, collection=collection, entry_id=entry_uuid):
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)


class CollectionDeleteView(MemoryView):
    required_roles = {"POST": Role.MEMBER}

    @extend_schema(
        tags=TAGS,
        summary="Delete entries of a collection by id",
        description="Ids that are not in the collection are skipped; `deleted` says how many went.",
        request=s.DeleteBodySerializer,
        responses={200: s.DeletedResponseSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, collection: str):
        self.collection_or_404(collection)
        body = _body(s.DeleteBodySerializer, request)
        deleted = services.memory_entries_delete(tenant=self.tenant, collection=collection, entry_ids=body["entry_ids"])
        return Response({"collection": collection, "deleted": deleted})


class CollectionClearView(MemoryView):
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=TAGS,
        summary="Delete every entry of a collection (admin)",
        request=None,
        responses={200: s.DeletedResponseSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, collection: str):
        self.collection_or_404(collection)
        deleted = services.memory_collection_clear(tenant=self.tenant, collection=collection)
        return Response({"collection": collection, "deleted": deleted})


class StatsView(MemoryView):
    @extend_schema(
        tags=TAGS,
        summary="Memory statistics and the embedder in use",
        responses={200: s.StatsResponseSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(selectors.memory_stats(tenant=self.tenant))
