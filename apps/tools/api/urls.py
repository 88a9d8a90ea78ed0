from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.tools.api import views, views_editor, views_skills

router = SimpleRouter(trailing_slash=False)
router.register("settings/ai-rules", views_skills.AiRuleViewSet, basename="ai-rule")

urlpatterns = [
    path("plugins", views.PluginListView.as_view(), name="plugin-list"),
    path("plugins/<str:name>", views.PluginDetailView.as_view(), name="plugin-detail"),
    path("plugins/<str:name>/toggle", views.PluginToggleView.as_view(), name="plugin-toggle"),
    # plugins/<name>/execute/<tool> runs under the policy, above tools: apps/conversations/api/urls.py.
    path("runtime/mcp", views.McpRuntimeView.as_view(), name="mcp-runtime"),
    path("runtime/mcp/clients/<str:name>/discover", views.McpDiscoverView.as_view(), name="mcp-client-discover"),
    path("runtime/mcp/clients/<str:name>/disconnect", views.McpDisconnectView.as_view(), name="mcp-client-disconnect"),
    path("editor/file", views_editor.EditorFileView.as_view(), name="editor-file"),
    path("editor/backups", views_editor.EditorBackupsView.as_view(), name="editor-backups"),
    path("editor/restore", views_editor.EditorRestoreView.as_view(), name="editor-restore"),
    # The fixed skills routes come before skills/<id>, which would otherwise take their names.
    path("skills", views_skills.SkillListView.as_view(), name="skill-list"),
    path("skills/reload", views_skills.SkillReloadView.as_view(), name="skill-reload"),
    path("skills/audit", views_skills.SkillAuditView.as_view(), name="skill-audit"),
    path("skills/catalog", views_skills.SkillCatalogView.as_view(), name="skill-catalog"),
    path("skills/catalog/install", views_skills.SkillInstallView.as_view(), name="skill-catalog-install"),
    path("skills/catalog/activate", views_skills.SkillActivateView.as_view(), name="skill-catalog-activate"),
    path("skills/catalog/deactivate", views_skills.SkillDeactivateView.as_view(), name="skill-catalog-deactivate"),
    path("skills/<str:skill_id>", views_skills.SkillDetailView.as_view(), name="skill-detail"),
    path("skills/<str:skill_id>/toggle", views_skills.SkillToggleView.as_view(), name="skill-toggle"),
    *router.urls,
]
