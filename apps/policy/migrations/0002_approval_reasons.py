"""Approval.reason held the policy's reason until someone decided, then the decider's: split it
into `policy_reason` and `decision_reason`. The policy's reason of a decided row is recovered
from its tool call's recorded policy decision."""

from __future__ import annotations

from django.db import migrations, models


def split_reasons(apps, _schema_editor):
    Approval = apps.get_model("policy", "Approval")
    for approval in Approval.objects.exclude(status="pending").select_related("tool_call").iterator():
        asked = (approval.tool_call.policy or {}).get("reason", "")
        if approval.policy_reason != asked:
            # The column was overwritten by the decider's reason.
            approval.decision_reason = approval.policy_reason
            approval.policy_reason = asked
            approval.save(update_fields=["policy_reason", "decision_reason"])


def join_reasons(apps, _schema_editor):
    Approval = apps.get_model("policy", "Approval")
    Approval.objects.exclude(decision_reason="").update(policy_reason=models.F("decision_reason"))


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0001_initial"),
        ("policy", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="approval", old_name="reason", new_name="policy_reason"),
        migrations.AlterField(
            model_name="approval",
            name="policy_reason",
            field=models.TextField(blank=True, help_text="Why the policy asked for approval."),
        ),
        migrations.AddField(
            model_name="approval",
            name="decision_reason",
            field=models.TextField(blank=True, help_text="Why it was approved or denied, as the decider said."),
        ),
        migrations.RunPython(split_reasons, join_reasons),
    ]
