"""Thin views over apps/scheduling: parse (inputs.py), call a service or selector, serialize."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from apps.core.api.views import TenantAPIView
from apps.core.errors import error_body
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.scheduling import runs, selectors, services
from apps.scheduling.api.serializers import (
    CronJobSerializer,
    CronRunSerializer,
    JobEnvelopeSerializer,
    JobWriteSerializer,
    RunEnvelopeSerializer,
    SchedulerStatusSerializer,
    TimeAgentSerializer,
    job_json,
    run_json,
)
from apps.scheduling.inputs import JobInputError, action_fields, job_changes, job_fields, timestamp_from
from apps.scheduling.models import CronJob, CronRun, ScheduleType
from apps.scheduling.schedule import ScheduleError, zone
from apps.tenancy.models import Role

TAGS = ["cron"]
CONFLICT = OpenApiResponse(
    ErrorSerializer, description="The job's state does not allow this, or cron_max_jobs is reached."
)
DELETED = OpenApiResponse(
    response={
        "type": "object",
        "properties": {"success": {"type": "boolean"}, "taskId": {"type": "string", "format": "uuid"}},
        "required": ["success", "taskId"],
    },
    description="The job and its beat entry are gone (its runs with it).",
)


class _KeyedPagination(DefaultPagination):
    """`{"<key>": [...], "count", "next", "previous"}`: the reference servers' shape, paginated."""

    key = "results"

    def get_paginated_response(self, data):
        return Response(
            {self.key: data, "count": self.count, "next": self.get_next_link(), "previous": self.get_previous_link()}
        )

    def get_paginated_response_schema(self, schema):
        base = LimitOffsetPagination.get_paginated_response_schema(self, schema)
        base["properties"][self.key] = base["properties"].pop("results")
        base["required"] = ["count", self.key]
        return base


class JobsPagination(_KeyedPagination):
    key = "jobs"


class RunsPagination(_KeyedPagination):
    key = "runs"


class _SchedulingView(TenantAPIView):
    def handle_exception(self, exc):
        if isinstance(exc, ScheduleError):  # JobInputError included
            field = getattr(exc, "field", "schedule")
            body = error_body(str(exc), "Fix the field named in `fields` and retry.", fields={field: [str(exc)]})
            return Response(body, status=400)
        return super().handle_exception(exc)

    def job_or_404(self, job_id) -> CronJob:
        job = selectors.cron_job_get(tenant=self.tenant, job_id=self.uuid_or_404(job_id))
        if job is None:
            raise Http404
        return job

    def _paginated(self, paginator, queryset, serialize):
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response([serialize(item) for item in page])


class CronJobListView(_SchedulingView):
    pagination_class = JobsPagination
    required_roles = {"GET": Role.VIEWER, "POST": Role.ADMIN}

    @extend_schema(
        tags=TAGS,
        summary="The tenant's scheduled jobs (paginated: `jobs`, `count`)",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=CronJob.Status.values)],
        responses={200: CronJobSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        status = request.query_params.get("status") or None
        if status is not None and status not in CronJob.Status.values:
            raise ValidationError({"status": [f"One of {', '.join(CronJob.Status.values)}."]})
        jobs = selectors.cron_job_list(tenant=self.tenant, status=status)
        return self._paginated(self.pagination_class(), jobs, job_json)

    @extend_schema(
        tags=TAGS,
        summary="Schedule a job: cron, once or interval; an event topic or an agent prompt",
        description="`scheduleType` cron needs `expression` (5 fields, read in `timezone`), once needs "
        "`atTimestamp` (Unix ms, in the future), interval needs `intervalMs` (at least the tenant's "
        "`cron_min_interval_seconds`). The action is `eventTopic` + `payload`, or `agent` + `prompt` "
        '(+ `session`: an id, or "new" for a new session per run). Errors name the field: '
        '`{"error": "Missing or invalid field: name"}`.',
        request=JobWriteSerializer,
        responses={201: JobEnvelopeSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request):
        fields = job_fields(self.tenant, request.data)
        job = services.cron_job_create(tenant=self.tenant, fields=fields, created_by=self.principal.user)
        return Response({"job": job_json(job)}, status=201)


class CronJobDetailView(_SchedulingView):
    id_label = "job"
    required_roles = {"GET": Role.VIEWER, "PATCH": Role.ADMIN, "DELETE": Role.ADMIN}

    @extend_schema(tags=TAGS, summary="One job", responses={200: JobEnvelopeSerializer, **ERROR_RESPONSES})
    def get(self, request, job_id):
        return Response({"job": job_json(self.job_or_404(job_id))})

    @extend_schema(
        tags=TAGS,
        summary="Change a job (name, schedule, action); a new schedule counts from now",
        request=JobWriteSerializer,
        responses={200: JobEnvelopeSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def patch(self, request, job_id):
        job = self.job_or_404(job_id)
        changes = job_changes(self.tenant, job, request.data)
        job = services.cron_job_update(tenant=self.tenant, job=job, changes=changes)
        return Response({"job": job_json(job)})

    @extend_schema(tags=TAGS, summary="Delete a job", responses={200: DELETED, **ERROR_RESPONSES})
    def delete(self, request, job_id):
        job = self.job_or_404(job_id)
        services.cron_job_delete(tenant=self.tenant, job=job)
        return Response({"success": True, "taskId": str(job.pk)})


class CronJobRunView(_SchedulingView):
    id_label = "job"
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=TAGS,
        summary="Run a job now, outside its schedule (its next run stays)",
        request=None,
        responses={202: RunEnvelopeSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, job_id):
        run = runs.cron_job_run_now(tenant=self.tenant, job=self.job_or_404(job_id))
        return Response({"run": run_json(run)}, status=202)


class CronJobPauseView(_SchedulingView):
    id_label = "job"
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=TAGS,
        summary="Pause an active job",
        request=None,
        responses={200: JobEnvelopeSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request, job_id):
        return Response({"job": job_json(services.cron_job_pause(tenant=self.tenant, job=self.job_or_404(job_id)))})


class CronJobResumeView(_SchedulingView):
    id_label = "job"
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=TAGS,
        summary="Resume a paused job (slots missed while paused are not run)",
        request=None,
        responses={200: JobEnvelopeSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request, job_id):
        return Response({"job": job_json(services.cron_job_resume(tenant=self.tenant, job=self.job_or_404(job_id)))})


class CronRunListView(_SchedulingView):
    pagination_class = RunsPagination

    @extend_schema(
        tags=TAGS,
        summary="Recent runs, newest first (paginated: `runs`, `count`)",
        parameters=[
            OpenApiParameter("job", OpenApiTypes.UUID, description="Only this job's runs"),
            OpenApiParameter("status", OpenApiTypes.STR, enum=CronRun.Status.values),
        ],
        responses={200: CronRunSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        job_id = None
        if request.query_params.get("job"):
            job_id = self.job_or_404(request.query_params["job"]).pk
        status = request.query_params.get("status") or None
        if status is not None and status not in CronRun.Status.values:
            raise ValidationError({"status": [f"One of {', '.join(CronRun.Status.values)}."]})
        found = selectors.cron_run_list(tenant=self.tenant, job_id=job_id, status=status)
        return self._paginated(self.pagination_class(), found, run_json)


class SchedulerStatusView(_SchedulingView):
    @extend_schema(
        tags=TAGS,
        summary="The scheduler: beat alive, its last tick, this tenant's active jobs and next fire",
        responses={200: SchedulerStatusSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(selectors.scheduler_status(tenant=self.tenant))


class SchedulerJobsView(_SchedulingView):
    pagination_class = JobsPagination

    @extend_schema(
        tags=TAGS,
        summary="The scheduler's jobs: active and paused ones (paginated: `jobs`, `count`)",
        responses={200: CronJobSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        jobs = selectors.cron_job_list(tenant=self.tenant).filter(status__in=services.OPEN_STATUSES)
        return self._paginated(self.pagination_class(), jobs, job_json)


class SchedulerCancelView(_SchedulingView):
    id_label = "job"
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=TAGS, summary="Cancel (delete) a scheduled job", request=None, responses={200: DELETED, **ERROR_RESPONSES}
    )
    def post(self, request, job_id):
        job = self.job_or_404(job_id)
        services.cron_job_delete(tenant=self.tenant, job=job)
        return Response({"success": True, "taskId": str(job.pk)})


class TimeAgentView(_SchedulingView):
    # A member schedules a prompt to an agent as they would post one; managing jobs is admin's.
    required_roles = {"POST": Role.MEMBER}

    @extend_schema(
        tags=TAGS,
        summary="Schedule a prompt for later: a once-job that prompts an agent at `schedule_time`",
        request=TimeAgentSerializer,
        responses={201: JobEnvelopeSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise JobInputError("Missing or invalid field: prompt", "prompt")
        if data.get("schedule_time") is None:
            raise JobInputError("Missing or invalid field: schedule_time", "schedule_time")
        at = timestamp_from(data["schedule_time"], "schedule_time")
        timezone = data.get("timezone") or "UTC"
        zone(timezone)
        agent = data.get("agent")
        if agent is None:
            from apps.agents.selectors import agent_resolve

            found = agent_resolve(tenant=self.tenant, name_or_id=None)
            if found is None:
                raise JobInputError("Missing or invalid field: agent (this tenant has no enabled agent)", "agent")
            agent = str(found.pk)
        fields = {
            "name": f"time agent: {' '.join(prompt.split())[:80]}",
            "description": "",
            "enabled": True,
            "schedule_type": ScheduleType.ONCE,
            "expression": "",
            "timezone": timezone,
            "at": at,
            "interval_seconds": None,
            **action_fields(self.tenant, {"agent": agent, "prompt": prompt, "session": data.get("session")}),
        }
        job = services.cron_job_create(
            tenant=self.tenant, fields=fields, created_by=self.principal.user, origin=CronJob.Origin.TIME_AGENT
        )
        return Response({"job": job_json(job)}, status=201)
