from __future__ import annotations

from django.urls import path

from apps.policy.api import views

urlpatterns = [
    path("settings/policy", views.PolicyView.as_view(), name="policy"),
    path("settings/policy/tool", views.ToolRuleView.as_view(), name="policy-tool"),
    path("settings/policy/tool/<str:tool_name>", views.ToolRuleDeleteView.as_view(), name="policy-tool-delete"),
    path("settings/guardrails/safe-mode/enter", views.SafeModeEnterView.as_view(), name="safe-mode-enter"),
    path("settings/guardrails/safe-mode/exit", views.SafeModeExitView.as_view(), name="safe-mode-exit"),
    path("settings/guardrails/status", views.GuardrailsStatusView.as_view(), name="guardrails-status"),
    path("settings/simulate/tool", views.SimulateToolView.as_view(), name="simulate-tool"),
    path("approvals", views.ApprovalListView.as_view(), name="approvals"),
    path("approvals/<str:approval_id>", views.ApprovalDetailView.as_view(), name="approval-detail"),
]
