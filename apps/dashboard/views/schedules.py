"""The Schedules page: `/schedules/`, the tenant's scheduled jobs and their runs, live.

Reads with apps.scheduling.selectors (as `GET /api/cron/jobs` and `/api/cron/runs`); writes
parse the form through apps.scheduling.inputs (job_fields / job_changes, the API's parsing and
messages) and call the same services (cron_job_create/update/delete/pause/resume,
runs.cron_job_run_now). Admins write jobs; everyone else reads, as in the API. The list and a
job's runs are partials that static/dashboard/schedules.js refreshes on `job_update` events.
"""

from __future__ import annotations

import json
from zoneinfo import available_timezones

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.agents.selectors import agent_list
from apps.conversations.selectors import session_list
from apps.core.errors import Conflict
from apps.core.ids import parse_uuid
from apps.dashboard import schedules_forms as forms
from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.dashboard.views.observatory import session_href
from apps.scheduling import runs, selectors, services
from apps.scheduling.inputs import job_changes, job_fields, schedule_fields
from apps.scheduling.models import CronJob
from apps.scheduling.schedule import ScheduleError, describe, first_run
from apps.tenancy.models import Role

nav_add("Work", NavItem("Schedules", "schedules", "clock"))

RUNS_SHOWN = 50
ZONES = sorted(available_timezones())
SESSIONS_OFFERED = 50


def _job_or_404(request, job_id) -> CronJob:
    job = selectors.cron_job_get(tenant=request.principal.tenant, job_id=parse_uuid(str(job_id)))
    if job is None:
        raise Http404("No such job.")
    return job


def _job_row(job: CronJob) -> dict:
    return {
        "job": job,
        "description": describe(
            schedule_type=job.schedule_type,
            expression=job.expression,
            timezone=job.timezone,
            at=job.at,
            interval_seconds=job.interval_seconds,
        ),
    }


def _list_context(request, *, error: str = "") -> dict:
    jobs = selectors.cron_job_list(tenant=request.principal.tenant)
    return {
        "rows": [_job_row(job) for job in jobs],
        "can_write": request.principal.has_role(Role.ADMIN),
        "list_error": error,
    }


def _job_context(request, job: CronJob, *, error: str = "") -> dict:
    found = selectors.cron_run_list(tenant=request.principal.tenant, job_id=job.pk).select_related("turn")
    return {
        **_job_row(job),
        "runs": [
            {"run": run, "session_url": session_href(run.turn.session_id) if run.turn_id and run.turn else ""}
            for run in found[:RUNS_SHOWN]
        ],
        "can_write": request.principal.has_role(Role.ADMIN),
        "job_error": error,
    }


def _form_context(request, *, job: CronJob | None, values: dict, errors: dict) -> dict:
    tenant = request.principal.tenant
    return {
        "job": job,
        "values": values,
        "errors": errors,
        "agents": list(agent_list(tenant=tenant)),
        "sessions": list(
            session_list(tenant=tenant, include_archived=False).select_related("agent")[:SESSIONS_OFFERED]
        ),
        "zones": ZONES,
        "can_write": request.principal.has_role(Role.ADMIN),
    }


def _errors_from(exc: Exception) -> dict[str, list[str]]:
    if isinstance(exc, ScheduleError):
        return {forms.form_field(exc.field): [str(exc)]}
    return {"form": [str(getattr(exc, "detail", exc))]}


@require_GET
@member_required
def schedules_page(request):
    return render(request, "dashboard/schedules/page.html", _list_context(request))


@require_GET
@member_required
def schedules_list(request):
    return render(request, "dashboard/schedules/_list.html", _list_context(request))


@require_GET
@member_required
def schedule_preview(request):
    """The schedule the form describes, in words, and when it would run first (as the user types)."""
    context: dict = {}
    if not any(request.GET.get(key, "").strip() for key in ("expression", "at", "interval_seconds")):
        return render(request, "dashboard/schedules/_preview.html", context)  # nothing typed yet
    try:
        fields = schedule_fields(forms.schedule_body(request.GET))
    except ScheduleError as exc:
        context["preview_error"] = str(exc)
    else:
        context["preview_description"] = describe(
            schedule_type=fields["schedule_type"],
            expression=fields["expression"],
            timezone=fields["timezone"],
            at=fields["at"],
            interval_seconds=fields["interval_seconds"],
        )
        context["preview_next"] = first_run(CronJob(**fields), now=timezone.now())
    return render(request, "dashboard/schedules/_preview.html", context)


@require_http_methods(["GET", "POST"])
@member_required(role=Role.ADMIN)
def schedule_new(request):
    values, errors = forms.job_values(None), {}
    if request.method == "POST":
        values = request.POST.dict()
        try:
            fields = job_fields(request.principal.tenant, forms.job_body(request.POST))
            job = services.cron_job_create(tenant=request.principal.tenant, fields=fields, created_by=request.user)
        except (ScheduleError, Conflict) as exc:
            errors = _errors_from(exc)
        else:
            messages.success(request, f"Scheduled “{job.name}”.")
            return redirect("dashboard:schedule_detail", job_id=job.pk)
    context = _form_context(request, job=None, values=values, errors=errors)
    return render(request, "dashboard/schedules/form.html", context, status=400 if errors else 200)


@require_http_methods(["GET", "POST"])
@member_required
def schedule_detail(request, job_id):
    job = _job_or_404(request, job_id)
    values, errors = forms.job_values(job), {}
    if request.method == "POST":
        if not request.principal.has_role(Role.ADMIN):
            return render(request, "dashboard/forbidden.html", {"role_needed": Role.ADMIN.label}, status=403)
        values = request.POST.dict()
        try:
            changes = job_changes(request.principal.tenant, job, forms.job_body(request.POST))
            job = services.cron_job_update(tenant=request.principal.tenant, job=job, changes=changes)
        except (ScheduleError, Conflict) as exc:
            errors = _errors_from(exc)
        else:
            messages.success(request, f"Saved “{job.name}”.")
            return redirect("dashboard:schedule_detail", job_id=job.pk)
    context = {**_job_context(request, job), **_form_context(request, job=job, values=values, errors=errors)}
    return render(request, "dashboard/schedules/detail.html", context, status=400 if errors else 200)


@require_GET
@member_required
def schedule_runs(request, job_id):
    job = _job_or_404(request, job_id)
    return render(request, "dashboard/schedules/_job.html", _job_context(request, job))


ACTIONS = {
    "run": ("Started a run of", lambda tenant, job: runs.cron_job_run_now(tenant=tenant, job=job)),
    "pause": ("Paused", lambda tenant, job: services.cron_job_pause(tenant=tenant, job=job)),
    "resume": ("Resumed", lambda tenant, job: services.cron_job_resume(tenant=tenant, job=job)),
    "delete": ("Deleted", lambda tenant, job: services.cron_job_delete(tenant=tenant, job=job)),
}


def _action(request, job_id, action: str):
    """Run now, pause, resume, delete; htmx gets the partial it came from (`from`: list or job)."""
    job = _job_or_404(request, job_id)
    done_word, perform = ACTIONS[action]
    error = ""
    try:
        perform(request.principal.tenant, job)
    except Conflict as exc:
        error = str(exc.detail)
    done = "" if error else f"{done_word} “{job.name}”."
    if request.headers.get("HX-Request"):
        if request.POST.get("from") == "job" and action != "delete":
            job.refresh_from_db()
            response = render(request, "dashboard/schedules/_job.html", _job_context(request, job, error=error))
        else:
            response = render(request, "dashboard/schedules/_list.html", _list_context(request, error=error))
        if done:
            response["HX-Trigger"] = json.dumps({"toast": done})
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    if action == "delete" or request.POST.get("from") != "job":
        return redirect("dashboard:schedules")
    return redirect("dashboard:schedule_detail", job_id=job.pk)


@require_POST
@member_required(role=Role.ADMIN)
def schedule_run(request, job_id):
    return _action(request, job_id, "run")


@require_POST
@member_required(role=Role.ADMIN)
def schedule_pause(request, job_id):
    return _action(request, job_id, "pause")


@require_POST
@member_required(role=Role.ADMIN)
def schedule_resume(request, job_id):
    return _action(request, job_id, "resume")


@require_POST
@member_required(role=Role.ADMIN)
def schedule_delete(request, job_id):
    return _action(request, job_id, "delete")
