from __future__ import annotations

from django.urls import path

from apps.scheduling.api import views

urlpatterns = [
    path("cron/jobs", views.CronJobListView.as_view(), name="cron-jobs"),
    path("cron/jobs/<str:job_id>", views.CronJobDetailView.as_view(), name="cron-job"),
    path("cron/jobs/<str:job_id>/run", views.CronJobRunView.as_view(), name="cron-job-run"),
    path("cron/jobs/<str:job_id>/pause", views.CronJobPauseView.as_view(), name="cron-job-pause"),
    path("cron/jobs/<str:job_id>/resume", views.CronJobResumeView.as_view(), name="cron-job-resume"),
    path("cron/runs", views.CronRunListView.as_view(), name="cron-runs"),
    path("settings/scheduler/status", views.SchedulerStatusView.as_view(), name="scheduler-status"),
    path("settings/scheduler/jobs", views.SchedulerJobsView.as_view(), name="scheduler-jobs"),
    path("settings/scheduler/cancel/<str:job_id>", views.SchedulerCancelView.as_view(), name="scheduler-cancel"),
    path("time_agent", views.TimeAgentView.as_view(), name="time-agent"),
]
