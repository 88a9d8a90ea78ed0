"""Turn tenant providers that hold a copy of a platform key into links to the platform provider.

Earlier versions copied OPENAI_API_KEY / ANTHROPIC_API_KEY into every new tenant's "openai" and
"anthropic" rows and pointed their "ollama" row at OLLAMA_HOST. Here the environment's platform
providers are upserted first (as at every bootstrap), then every tenant row whose decrypted key
equals a platform provider's key of the same kind (whatever its name or base_url: a row already
redirected to a tenant's host is the exploit this closes), and every Ollama row pointing at the
operator's Ollama, becomes a link: its key, hint, base_url and options are cleared, its name and
catalog stay, so agents keep their models. A copy of a key the operator has since rotated cannot
be told apart from a tenant's own key and is left alone (the old key is revoked at the vendor).
"""

from django.db import migrations


def link_copies(apps, _schema_editor):
    from apps.agents.crypto import SecretDecryptionError, decrypt_secret
    from apps.agents.services.platform import sync_env_platform_providers

    platform_model = apps.get_model("agents", "PlatformProvider")
    provider_model = apps.get_model("agents", "Provider")
    sync_env_platform_providers(platform_model)

    def plain(token):
        try:
            return decrypt_secret(token)
        except SecretDecryptionError:
            return None

    platforms = list(platform_model.objects.all())
    by_key = {(p.kind, plain(p.api_key_encrypted)): p for p in platforms if p.api_key_encrypted}
    by_url = {(p.kind, p.base_url.rstrip("/")): p for p in platforms if p.kind == "ollama" and p.base_url}
    for row in provider_model.objects.filter(platform__isnull=True).exclude(kind="offline").order_by("created_at"):
        platform = None
        if row.api_key_encrypted:
            platform = by_key.get((row.kind, plain(row.api_key_encrypted)))
        elif row.kind == "ollama":
            platform = by_url.get((row.kind, (row.base_url or "").rstrip("/")))
        if platform is None:
            continue
        cleared = {"api_key_encrypted": "", "api_key_hint": "", "base_url": "", "options": {}}
        if provider_model.objects.filter(tenant_id=row.tenant_id, platform=platform).exists():
            # A second copy in one tenant: it cannot be a second link, but it loses the key all the same.
            provider_model.objects.filter(pk=row.pk).update(**cleared, enabled=False)
        else:
            provider_model.objects.filter(pk=row.pk).update(**cleared, platform=platform)


class Migration(migrations.Migration):
    dependencies = [("agents", "0003_platform_providers")]

    operations = [migrations.RunPython(link_copies, migrations.RunPython.noop)]
