"""Re-encrypt every stored secret under the first FIELD_ENCRYPTION_KEY (MultiFernet.rotate).

After a key change: put the new key first in FIELD_ENCRYPTION_KEY (`new,old`), run this, then
drop the old key. Rows that no configured key decrypts are reported and left alone; the command
then exits non-zero so a deploy script notices.
"""

from __future__ import annotations

from django.apps import apps as django_apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.agents.crypto import SecretDecryptionError, rotate_secret

# (app label, model, field): every column written with crypto.encrypt_secret. Looked up by label,
# so this command does not import apps above agents.
ENCRYPTED_FIELDS = [
    ("agents", "PlatformProvider", "api_key_encrypted"),
    ("agents", "Provider", "api_key_encrypted"),
    ("tools", "Plugin", "secrets_encrypted"),
]
BATCH = 500


class Command(BaseCommand):
    help = "Re-encrypt stored secrets (provider keys, plugin secrets) under the first FIELD_ENCRYPTION_KEY."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be rotated; write nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        failed = 0
        for label, model_name, field in ENCRYPTED_FIELDS:
            try:
                model = django_apps.get_model(label, model_name)
            except LookupError:
                continue
            rotated, unreadable = self._rotate(model, field, dry_run=dry_run)
            failed += unreadable
            self.stdout.write(f"{label}.{model_name}.{field}: {rotated} rotated, {unreadable} unreadable")
        if failed:
            raise CommandError(f"{failed} secret(s) could not be decrypted with any configured key; set them again.")
        self.stdout.write(self.style.SUCCESS("Done." if not dry_run else "Dry run: nothing written."))

    def _rotate(self, model, field: str, *, dry_run: bool) -> tuple[int, int]:
        rotated = unreadable = 0
        ids = list(model.objects.exclude(**{field: ""}).values_list("pk", flat=True))
        for start in range(0, len(ids), BATCH):
            with transaction.atomic():
                # Row locks: a key saved meanwhile is not overwritten with the rotated old one.
                for pk, token in (
                    model.objects.select_for_update().filter(pk__in=ids[start : start + BATCH]).values_list("pk", field)
                ):
                    try:
                        new_token = rotate_secret(token)
                    except SecretDecryptionError:
                        unreadable += 1
                        self.stderr.write(f"{model._meta.label} {pk}: cannot be decrypted")
                        continue
                    if not dry_run:
                        model.objects.filter(pk=pk).update(**{field: new_token})
                    rotated += 1
        return rotated, unreadable
