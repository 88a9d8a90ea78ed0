"""The Schedules page (`/schedules/`) in a browser: an admin schedules an agent job (a bad cron
expression is refused next to the field, a good one is described in words as it is typed), runs
it now and follows the run to its turn, pauses and resumes it; the list updates itself when a
job changes elsewhere; a member reads but sees no write controls."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.agents.services import tenant_bootstrap_agents
from apps.scheduling import services
from apps.scheduling.inputs import job_fields
from apps.scheduling.models import CronJob, CronRun
from apps.tenancy.principal import Actor

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_schedules_runs_pauses_and_resumes_an_agent_job(page, sign_in):
    _, tenant = sign_in("admin")
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    page.goto("/schedules/")
    expect(page.get_by_role("heading", name="No scheduled jobs yet")).to_be_visible()
    page.get_by_role("banner").get_by_role("link", name="New job").click()

    page.get_by_label("Name").fill("Morning brief")
    page.get_by_label("Timezone").fill("Europe/Paris")
    page.get_by_label("Cron expression").fill("61 7 * * 1-5")
    preview = page.get_by_test_id("schedule-preview")
    expect(preview).to_contain_text("61")  # the expression's error, as it is typed
    expect(page.get_by_label("Event topic")).to_be_hidden()  # only the chosen action's fields
    page.get_by_label("Prompt").fill("What is 6*7?")
    page.get_by_role("button", name="Schedule it").click()
    expect(page.locator("#f-expression-error")).to_be_visible()
    expect(page.get_by_label("Cron expression")).to_have_attribute("aria-invalid", "true")
    assert not CronJob.objects.filter(tenant=tenant).exists()

    page.get_by_label("Cron expression").fill("0 7 * * 1-5")
    expect(preview).to_contain_text("At 07:00, Monday through Friday (Europe/Paris)")
    page.get_by_role("button", name="Schedule it").click()
    expect(page.locator(".flash")).to_contain_text("Scheduled “Morning brief”")
    job = CronJob.objects.get(tenant=tenant)
    expect(page.get_by_test_id("job-status")).to_have_text("Active")
    expect(page.get_by_text("No runs yet.")).to_be_visible()
    expect(page.locator("#schedules-live")).to_have_text("Live")

    page.get_by_role("button", name="Run now").click()
    # The run starts the agent's turn inside the request (eager Celery in tests): give it time.
    expect(page.locator(".toast")).to_contain_text("Started a run of “Morning brief”", timeout=20_000)
    run = CronRun.objects.get(job=job)
    runs = page.get_by_test_id("runs")
    expect(runs).to_contain_text("Run now")
    expect(runs.get_by_role("link", name="the turn")).to_have_attribute("href", f"/turns/{run.turn_id}/")
    expect(runs.get_by_role("link", name="session")).to_be_visible()

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_test_id("job-status")).to_have_text("Paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_test_id("job-status")).to_have_text("Active")
    job.refresh_from_db()
    assert job.status == CronJob.Status.ACTIVE
    assert job.run_count == 1


def test_a_member_follows_jobs_live_but_sees_no_write_controls(page, sign_in):
    _, tenant = sign_in("member")
    page.goto("/schedules/")
    expect(page.locator("#schedules-live")).to_have_text("Live")
    expect(page.get_by_role("heading", name="No scheduled jobs yet")).to_be_visible()

    fields = job_fields(
        tenant, {"name": "hourly ping", "scheduleType": "interval", "intervalMs": 3_600_000, "eventTopic": "ping"}
    )
    job = services.cron_job_create(tenant=tenant, fields=fields)  # job_update: the list refreshes itself
    row = page.locator(f'[data-job-id="{job.pk}"]')
    expect(row).to_contain_text("Every 1 hour")
    expect(row.locator(".badge")).to_have_text("Active")
    expect(page.get_by_role("link", name="New job")).to_have_count(0)
    expect(page.get_by_role("button", name="Run now")).to_have_count(0)

    services.cron_job_pause(tenant=tenant, job=job)
    expect(row.locator(".badge")).to_have_text("Paused")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
