from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from apps.tenancy.models import Membership, Role, Tenant


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805 - factory_boy hook signature
        if create:
            obj.save()


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


def populate_tenant(tenant: Tenant) -> list[str]:
    """Create one of every tenant-owned object for `tenant`; return every id and name a route
    could be given for them. The isolation test checks that each tenant-owned model has a row
    here, so a new model has to be added as it lands."""
    from apps.tenancy.models import AuditLog
    from tests.conftest import create_key

    owner = UserFactory()
    membership = MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    api_key, _ = create_key(tenant, user=owner, name=f"{tenant.slug}-key")
    audit = AuditLog.objects.filter(tenant=tenant).first()
    identifiers = [str(membership.pk), str(api_key.pk), str(tenant.pk), tenant.slug, api_key.name, api_key.prefix]
    if audit is not None:
        identifiers.append(str(audit.pk))
    return identifiers
