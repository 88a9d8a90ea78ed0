from __future__ import annotations

from django.urls import path

from apps.memory.api import views

urlpatterns = [
    path("memory/working", views.WorkingMemoryView.as_view(), name="memory-working"),
    path("memory/working/<str:session_id>", views.SessionWorkingMemoryView.as_view(), name="memory-working-session"),
    path("memory/episodic", views.EpisodicMemoryView.as_view(), name="memory-episodic"),
    path("memory/semantic", views.SemanticMemoryView.as_view(), name="memory-semantic"),
    # Before semantic/<category>: "categories" is not a category.
    path("memory/semantic/categories", views.SemanticCategoriesView.as_view(), name="memory-semantic-categories"),
    path("memory/semantic/<str:category>", views.SemanticCategoryView.as_view(), name="memory-semantic-category"),
    path("memory/search", views.MemorySearchView.as_view(), name="memory-search"),
    path("memory/query", views.MemoryQueryView.as_view(), name="memory-query"),
    path("memory/collections", views.CollectionsView.as_view(), name="memory-collections"),
    path("memory/entries", views.EntryCreateView.as_view(), name="memory-entry-create"),
    path("memory/entries/<str:collection>", views.CollectionEntriesView.as_view(), name="memory-entries"),
    path("memory/entry/<str:collection>/<str:entry_id>", views.EntryDeleteView.as_view(), name="memory-entry-delete"),
    path("memory/delete/<str:collection>", views.CollectionDeleteView.as_view(), name="memory-delete"),
    path("memory/clear/<str:collection>", views.CollectionClearView.as_view(), name="memory-clear"),
    path("memory/stats", views.StatsView.as_view(), name="memory-stats"),
]
