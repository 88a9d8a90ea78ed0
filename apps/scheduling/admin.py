from __future__ import annotations

from django.contrib import admin

from apps.scheduling.models import CronJob, CronRun


@admin.register(CronJob)
class CronJobAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "schedule_type", "status", "next_run_at", "last_run_at", "run_count")
    list_filter = ("status", "schedule_type", "action_type")
    search_fields = ("name", "tenant__slug")
    readonly_fields = ("next_run_at", "last_run_at", "run_count", "schedule_since")


@admin.register(CronRun)
class CronRunAdmin(admin.ModelAdmin):
    list_display = ("job", "tenant", "scheduled_for", "status", "lateness_ms", "trigger")
    list_filter = ("status", "trigger")
    readonly_fields = [field.name for field in CronRun._meta.fields]
