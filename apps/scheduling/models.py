"""Tenants' scheduled jobs (cron, once, interval) and the runs they made.

A job is fired by django-celery-beat through one `PeriodicTask` per job, named `cron:<job id>`
(apps/scheduling/beat.py keeps it in step); the row here is the truth about what the job is and
when it runs next, the PeriodicTask only tells beat when to look."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import TenantOwnedModel


class ScheduleType(models.TextChoices):
    CRON = "cron", "Cron expression"
    ONCE = "once", "Once, at a time"
    INTERVAL = "interval", "Every N seconds"


class ActionType(models.TextChoices):
    AGENT = "agent", "Prompt an agent"
    EVENT = "event", "Publish an event topic"


class CronJob(TenantOwnedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"  # a once-job that ran
        FAILED = "failed", "Failed"  # cannot run any more (its agent or session was deleted)

    class Origin(models.TextChoices):
        API = "api", "API"
        TOOL = "tool", "An agent's schedule_task tool"
        TIME_AGENT = "time_agent", "POST /api/time_agent"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    schedule_type = models.CharField(max_length=16, choices=ScheduleType.choices)
    expression = models.CharField(max_length=120, blank=True)  # cron: 5 fields
    timezone = models.CharField(max_length=64, default="UTC")  # IANA name; cron fields are read in it
    at = models.DateTimeField(null=True, blank=True)  # once
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)  # interval
    # Slots before this moment are never run: a job does not catch up on the time before it was
    # created, rescheduled or resumed.
    schedule_since = models.DateTimeField()

    action_type = models.CharField(max_length=16, choices=ActionType.choices)
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompt = models.TextField(blank=True)
    # A fixed session keeps every run's answer in one conversation; without one each run opens a
    # new session (`new_session_per_run`).
    session = models.ForeignKey(
        "conversations.ChatSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    new_session_per_run = models.BooleanField(default=True)
    event_topic = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict, blank=True)

    enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    status_reason = models.CharField(max_length=500, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.API)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["tenant", "status"], name="cronjob_tenant_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.schedule_type})"

    @property
    def periodic_task_name(self) -> str:
        return f"cron:{self.pk}"


class CronRun(TenantOwnedModel):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"  # its turn has not ended yet
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Run now"

    job = models.ForeignKey(CronJob, on_delete=models.CASCADE, related_name="runs")
    scheduled_for = models.DateTimeField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    lateness_ms = models.IntegerField(default=0)
    turn = models.ForeignKey("conversations.Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-scheduled_for"]
        constraints = [
            # A second beat, or a redelivered task, firing the same slot finds this row.
            models.UniqueConstraint(fields=["job", "scheduled_for"], name="cronrun_one_per_slot")
        ]
        indexes = [models.Index(fields=["tenant", "-scheduled_for"], name="cronrun_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.job_id} @ {self.scheduled_for:%Y-%m-%d %H:%M:%S}"
