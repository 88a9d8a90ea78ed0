"""Skills (the catalog, installation, per-agent activation, the audit) and AI rules."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.agents.selectors import agent_get_by_name
from apps.core.api.views import TenantAPIView, TenantViewSet
from apps.core.openapi import ERROR_RESPONSES
from apps.core.pagination import DefaultPagination
from apps.tenancy.models import Role
from apps.tools import rules, selectors, skills
from apps.tools.api.serializers import (
    AiRuleSerializer,
    CatalogActivateSerializer,
    CatalogNameSerializer,
    CatalogSerializer,
    ReloadSerializer,
    SkillAuditSerializer,
    SkillCreateSerializer,
    SkillSerializer,
    ToggleSerializer,
)
from apps.tools.api.views import CONFLICT_RESPONSE, READ_VIEWER_WRITE_ADMIN
from apps.tools.models import Skill

ADMIN_ONLY = {"*": Role.ADMIN}


def _skills(tenant):
    return selectors.skill_list(tenant=tenant)


class SkillListView(TenantAPIView):
    required_roles = READ_VIEWER_WRITE_ADMIN
    pagination_class = DefaultPagination

    @extend_schema(
        tags=["skills"],
        summary="The tenant's skills",
        description="Installed catalog skills and custom ones, with the agents each is enabled for.",
        responses={200: SkillSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(_skills(self.tenant), request, view=self)
        return paginator.get_paginated_response(SkillSerializer(page, many=True).data)

    @extend_schema(
        tags=["skills"],
        summary="Write a custom skill (admin)",
        request=SkillCreateSerializer,
        responses={201: SkillSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request):
        payload = SkillCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        skill = skills.skill_create(tenant=self.tenant, actor=self.actor(), **payload.validated_data)
        return Response(SkillSerializer(_skills(self.tenant).get(pk=skill.pk)).data, status=status.HTTP_201_CREATED)


class _SkillObjectView(TenantAPIView):
    id_label = "skill"

    def get_skill(self, skill_id: str) -> Skill:
        skill = _skills(self.tenant).filter(pk=self.uuid_or_404(skill_id)).first()
        if skill is None:
            raise Http404
        return skill


class SkillDetailView(_SkillObjectView):
    required_roles = READ_VIEWER_WRITE_ADMIN

    @extend_schema(tags=["skills"], summary="One skill", responses={200: SkillSerializer, **ERROR_RESPONSES})
    def get(self, request, skill_id: str):
        return Response(SkillSerializer(self.get_skill(skill_id)).data)

    @extend_schema(
        tags=["skills"],
        summary="Remove a skill (admin)",
        description="It leaves every agent it was enabled for. A catalog skill can be installed again.",
        responses={204: None, **ERROR_RESPONSES},
    )
    def delete(self, request, skill_id: str):
        skills.skill_delete(tenant=self.tenant, actor=self.actor(), skill=self.get_skill(skill_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SkillToggleView(_SkillObjectView):
    required_roles = ADMIN_ONLY

    @extend_schema(
        tags=["skills"],
        summary="Enable or disable a skill for the whole tenant (admin)",
        description='`{"enabled": true|false}`, or no body to flip. A disabled skill stays linked to its agents '
        "but leaves their prompts.",
        request=ToggleSerializer,
        responses={200: SkillSerializer, **ERROR_RESPONSES},
    )
    def put(self, request, skill_id: str):
        skill = self.get_skill(skill_id)
        payload = ToggleSerializer(data=request.data or {})
        payload.is_valid(raise_exception=True)
        skills.skill_toggle(
            tenant=self.tenant, actor=self.actor(), skill=skill, enabled=payload.validated_data.get("enabled")
        )
        return Response(SkillSerializer(self.get_skill(skill_id)).data)


class SkillReloadView(TenantAPIView):
    required_roles = ADMIN_ONLY

    @extend_schema(
        tags=["skills"],
        summary="Re-read the installed catalog skills from disk (admin)",
        description="Each installed catalog skill whose file changed takes the file's content and hash; skills "
        "whose file is gone are listed in `missing` and left as they are.",
        request=None,
        responses={200: ReloadSerializer, **ERROR_RESPONSES},
    )
    def post(self, request):
        return Response(ReloadSerializer(skills.skills_reload(tenant=self.tenant, actor=self.actor())).data)


class SkillCatalogView(TenantAPIView):
    @extend_schema(
        tags=["skills"],
        summary="The skills catalog shipped with the platform",
        description="Every skill file in SKILLS_DIR, whether this tenant installed it and whether that copy is "
        "up to date; files that are not valid skills are listed in `problems`.",
        responses={200: CatalogSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(CatalogSerializer(skills.catalog_list(tenant=self.tenant)).data)


class SkillInstallView(TenantAPIView):
    required_roles = ADMIN_ONLY

    @extend_schema(
        tags=["skills"],
        summary="Install a catalog skill (admin)",
        request=CatalogNameSerializer,
        responses={201: SkillSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request):
        payload = CatalogNameSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        skill = skills.skill_install(tenant=self.tenant, actor=self.actor(), name=payload.validated_data["name"])
        return Response(SkillSerializer(_skills(self.tenant).get(pk=skill.pk)).data, status=status.HTTP_201_CREATED)


class _ActivationView(TenantAPIView):
    required_roles = ADMIN_ONLY
    active = True

    def post(self, request):
        payload = CatalogActivateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = agent_get_by_name(tenant=self.tenant, name=payload.validated_data["agent"])
        if agent is None:
            raise ValidationError({"agent": ["No agent with this name."]})
        skill = skills.skill_activate(
            tenant=self.tenant, actor=self.actor(), name=payload.validated_data["name"], agent=agent, active=self.active
        )
        return Response(SkillSerializer(_skills(self.tenant).get(pk=skill.pk)).data)


class SkillActivateView(_ActivationView):
    @extend_schema(
        tags=["skills"],
        summary="Enable a skill for an agent (admin)",
        description="`name`: an installed skill, or a catalog skill (installed on the way). `agent`: the agent's "
        "name. The skill goes into the agent's system prompt from its next turn (while enabled).",
        request=CatalogActivateSerializer,
        responses={200: SkillSerializer, **ERROR_RESPONSES},
    )
    def post(self, request):
        return super().post(request)


class SkillDeactivateView(_ActivationView):
    active = False

    @extend_schema(
        tags=["skills"],
        summary="Disable a skill for an agent (admin)",
        request=CatalogActivateSerializer,
        responses={200: SkillSerializer, **ERROR_RESPONSES},
    )
    def post(self, request):
        return super().post(request)


class SkillAuditView(TenantAPIView):
    @extend_schema(
        tags=["skills"],
        summary="Installed catalog skills that no longer match their file",
        description="`hash_mismatch`: the file on disk is not what was installed (reload to take it, or find "
        "out who changed it); `missing_file`: the file is gone.",
        responses={200: SkillAuditSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(SkillAuditSerializer(skills.skills_audit(tenant=self.tenant)).data)


# --- AI rules ----------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="The tenant's AI rules", responses={200: AiRuleSerializer(many=True), **ERROR_RESPONSES}
    ),
    retrieve=extend_schema(summary="One AI rule", responses={200: AiRuleSerializer, **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Add an AI rule (admin)",
        description="Enabled rules go into every agent's system prompt, highest `priority` first, within "
        "RULES_PROMPT_MAX_TOKENS.",
        request=AiRuleSerializer,
        responses={201: AiRuleSerializer, **ERROR_RESPONSES},
    ),
    update=extend_schema(
        summary="Replace an AI rule (admin)",
        request=AiRuleSerializer,
        responses={200: AiRuleSerializer, **ERROR_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change an AI rule (admin)",
        request=AiRuleSerializer,
        responses={200: AiRuleSerializer, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(summary="Delete an AI rule (admin)", responses={204: None, **ERROR_RESPONSES}),
)
@extend_schema(tags=["rules"])
class AiRuleViewSet(TenantViewSet):
    serializer_class = AiRuleSerializer
    required_roles = READ_VIEWER_WRITE_ADMIN
    pagination_class = DefaultPagination
    id_label = "rule"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return rules.rule_list(tenant=self.tenant)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(AiRuleSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(AiRuleSerializer(self.get_object()).data)

    def create(self, request):
        payload = AiRuleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        rule = rules.rule_create(tenant=self.tenant, actor=self.actor(), **payload.validated_data)
        return Response(AiRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial: bool = False):
        rule = self.get_object()  # before validation: another tenant's id is a 404, not a 400
        payload = AiRuleSerializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        rule = rules.rule_update(tenant=self.tenant, actor=self.actor(), rule=rule, **payload.validated_data)
        return Response(AiRuleSerializer(rule).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def destroy(self, request, pk=None):
        rules.rule_delete(tenant=self.tenant, actor=self.actor(), rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
