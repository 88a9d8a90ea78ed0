"""The dashboard's pages. Each page module adds its own patterns here (docs/dashboard.md)."""

from __future__ import annotations

from django.urls import path

from apps.dashboard.views import auth, home, observatory

# The sidebar's items follow this import order (each page module adds its own NavItem).
# isort: off
from apps.dashboard.views import chat, approvals, memory, schedules
from apps.dashboard.views import agents, providers, skills, policy, workspace
from apps.dashboard.views import keys, members, audit, usage, invite
# isort: on

app_name = "dashboard"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.SignInView.as_view(), name="login"),
    path("logout/", auth.SignOutView.as_view(), name="logout"),
    path("account/password/", auth.password_change, name="password_change"),
    path("switch-tenant/", auth.switch_tenant, name="switch_tenant"),
    # Work: chat, the turn observatory, approvals inbox, memory (docs/dashboard.md).
    path("chat/", chat.chat_index, name="chat"),
    path("chat/new/", chat.chat_new, name="chat_new"),
    path("chat/<uuid:session_id>/", chat.chat_session, name="chat_session"),
    path("chat/<uuid:session_id>/rename/", chat.chat_rename, name="chat_rename"),
    path("chat/<uuid:session_id>/archive/", chat.chat_archive, name="chat_archive"),
    path("chat/<uuid:session_id>/delete/", chat.chat_delete, name="chat_delete"),
    path("chat/<uuid:session_id>/turns/<uuid:turn_id>/", chat.chat_turn, name="chat_turn"),
    path("turns/<uuid:turn_id>/", observatory.turn_detail, name="turn"),
    path("approvals/", approvals.approvals_page, name="approvals"),
    path("approvals/list/", approvals.approvals_list, name="approvals_list"),
    path("approvals/<uuid:approval_id>/decide/", approvals.approval_decide, name="approval_decide"),
    path("memory/", memory.memory_page, name="memory"),
    path("memory/timeline/", memory.memory_timeline, name="memory_timeline"),
    path("memory/entries/<uuid:entry_id>/delete/", memory.memory_entry_delete, name="memory_entry_delete"),
    path("memory/delete/", memory.memory_bulk_delete, name="memory_bulk_delete"),
    path("memory/clear/", memory.memory_collection_clear, name="memory_clear"),
    path("schedules/", schedules.schedules_page, name="schedules"),
    path("schedules/list/", schedules.schedules_list, name="schedules_list"),
    path("schedules/new/", schedules.schedule_new, name="schedule_new"),
    path("schedules/preview/", schedules.schedule_preview, name="schedule_preview"),
    path("schedules/<uuid:job_id>/", schedules.schedule_detail, name="schedule_detail"),
    path("schedules/<uuid:job_id>/runs/", schedules.schedule_runs, name="schedule_runs"),
    path("schedules/<uuid:job_id>/run/", schedules.schedule_run, name="schedule_run"),
    path("schedules/<uuid:job_id>/pause/", schedules.schedule_pause, name="schedule_pause"),
    path("schedules/<uuid:job_id>/resume/", schedules.schedule_resume, name="schedule_resume"),
    path("schedules/<uuid:job_id>/delete/", schedules.schedule_delete, name="schedule_delete"),
    # Build: agents, providers, skills & plugins, policy, workspace
    path("agents/", agents.agent_list, name="agents"),
    path("agents/new/", agents.agent_new, name="agent_new"),
    path("agents/<str:agent_id>/", agents.agent_detail, name="agent_detail"),
    path("agents/<str:agent_id>/toggle/", agents.agent_toggle, name="agent_toggle"),
    path("agents/<str:agent_id>/delete/", agents.agent_delete, name="agent_delete"),
    path("providers/", providers.provider_list, name="providers"),
    path("providers/<str:provider_id>/", providers.provider_detail, name="provider_detail"),
    path("providers/<str:provider_id>/test/", providers.provider_test, name="provider_test"),
    path("providers/<str:provider_id>/models/", providers.provider_models, name="provider_models"),
    path("providers/<str:provider_id>/toggle/", providers.provider_toggle, name="provider_toggle"),
    path("providers/<str:provider_id>/delete/", providers.provider_delete, name="provider_delete"),
    path("skills/", skills.skills_page, name="skills"),
    path("skills/catalog/install/", skills.catalog_install, name="skill_install"),
    path("skills/<str:skill_id>/toggle/", skills.skill_toggle, name="skill_toggle"),
    path("skills/<str:skill_id>/delete/", skills.skill_delete, name="skill_delete"),
    path("plugins/mcp/new/", skills.mcp_register, name="mcp_register"),
    path("plugins/<str:name>/", skills.plugin_detail, name="plugin_detail"),
    path("plugins/<str:name>/toggle/", skills.plugin_toggle, name="plugin_toggle"),
    path("plugins/<str:name>/discover/", skills.plugin_discover, name="plugin_discover"),
    path("plugins/<str:name>/delete/", skills.plugin_delete, name="plugin_delete"),
    path("policy/", policy.policy_page, name="policy"),
    path("policy/rules/", policy.rule_set, name="policy_rule_set"),
    path("policy/rules/<str:tool_name>/delete/", policy.rule_delete, name="policy_rule_delete"),
    path("policy/default/", policy.default_set, name="policy_default"),
    path("policy/safe-mode/", policy.safe_mode, name="policy_safe_mode"),
    path("policy/simulate/", policy.simulate, name="policy_simulate"),
    path("policy/ai-rules/", policy.ai_rule_create, name="ai_rule_create"),
    path("policy/ai-rules/<str:rule_id>/delete/", policy.ai_rule_delete, name="ai_rule_delete"),
    path("workspace/", workspace.browse, name="workspace"),
    path("workspace/file/", workspace.file_view, name="workspace_file"),
    path("workspace/restore/", workspace.restore, name="workspace_restore"),
    # Tenant: API keys, members and invitations, the audit log, usage; the invitation accept page.
    path("keys/", keys.keys, name="keys"),
    path("keys/<uuid:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("members/", members.members, name="members"),
    path("members/<uuid:membership_id>/role/", members.member_role, name="member_role"),
    path("members/<uuid:membership_id>/remove/", members.member_remove, name="member_remove"),
    path("members/invitations/", members.invitation_create, name="invitation_create"),
    path("members/invitations/<uuid:invitation_id>/revoke/", members.invitation_revoke, name="invitation_revoke"),
    path("audit/", audit.audit, name="audit"),
    path("usage/", usage.usage, name="usage"),
    path("invite/<str:token>/", invite.invite, name="invite"),
]
