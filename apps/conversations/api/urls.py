from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.conversations.api import views, views_approvals, views_attachments, views_sync, views_tools

router = SimpleRouter(trailing_slash=False)
router.register("sessions", views.SessionViewSet, basename="session")

urlpatterns = [
    path("sessions/<str:session_id>/messages", views.SessionMessagesView.as_view(), name="session-messages"),
    path(
        "sessions/<str:session_id>/attachments",
        views_attachments.SessionAttachmentsView.as_view(),
        name="session-attachments",
    ),
    path(
        "sessions/<str:session_id>/attachments/<str:ref>",
        views_attachments.SessionAttachmentView.as_view(),
        name="session-attachment",
    ),
    path("sessions/<str:session_id>/fork", views_attachments.SessionForkView.as_view(), name="session-fork"),
    path(
        "sessions/<str:session_id>/turns/<str:turn_id>/retry",
        views.SessionTurnRetryView.as_view(),
        name="session-turn-retry",
    ),
    path("turns/<str:turn_id>", views.TurnDetailView.as_view(), name="turn-detail"),
    path("turns/<str:turn_id>/context", views.TurnContextView.as_view(), name="turn-context"),
    path("turns/<str:turn_id>/tools", views.TurnToolsView.as_view(), name="turn-tools"),
    path("turns/<str:turn_id>/model-selection", views.TurnModelSelectionView.as_view(), name="turn-model-selection"),
    path("turns/<str:turn_id>/feedback", views.TurnFeedbackView.as_view(), name="turn-feedback"),
    path("agent/message", views_sync.AgentMessageView.as_view(), name="agent-message"),
    path("agent/message/stream", views_sync.AgentMessageStreamView.as_view(), name="agent-message-stream"),
    path("agent/status", views_sync.AgentStatusView.as_view(), name="agent-status"),
    path("tasks", views_sync.TaskView.as_view(), name="tasks"),
    path("approvals/<str:approval_id>/approve", views_approvals.ApprovalApproveView.as_view(), name="approval-approve"),
    path("approvals/<str:approval_id>/deny", views_approvals.ApprovalDenyView.as_view(), name="approval-deny"),
    path("sessions/<str:session_id>/approve", views_approvals.SessionApproveView.as_view(), name="session-approve"),
    path("audit/policy/<str:turn_id>", views_approvals.PolicyAuditView.as_view(), name="audit-policy"),
    path("audit/tools/<str:turn_id>", views_approvals.ToolAuditView.as_view(), name="audit-tools"),
    # A tools route that needs the policy (above tools): apps/conversations/api/views_tools.py says why.
    path("plugins/<str:name>/execute/<str:tool>", views_tools.PluginExecuteView.as_view(), name="plugin-execute"),
    *router.urls,
]
