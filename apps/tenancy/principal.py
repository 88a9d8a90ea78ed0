"""Who is calling: resolved once from the credentials, then passed explicitly to services."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.tenancy.models import ROLE_RANK, ApiKey, Role, Scope, Tenant

# The most a scope set allows; a key's effective role is the lower of this and its own role.
_SCOPE_CEILING = {Scope.READ: Role.VIEWER, Scope.WRITE: Role.MEMBER, Scope.ADMIN: Role.OWNER}


def lower_role(a: str, b: str) -> str:
    return a if ROLE_RANK[a] <= ROLE_RANK[b] else b


def role_at_least(role: str, needed: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[needed]


def may_grant(actor_role: str, role: str) -> bool:
    """Whether someone with `actor_role` may give or take away `role`: nobody above their own
    role, and only an owner makes or unmakes an owner."""
    if role == Role.OWNER:
        return actor_role == Role.OWNER
    return role_at_least(actor_role, role)


def scope_ceiling(scopes: list[str]) -> str:
    ceiling = Role.VIEWER
    for scope in scopes:
        allowed = _SCOPE_CEILING.get(scope)
        if allowed and ROLE_RANK[allowed] > ROLE_RANK[ceiling]:
            ceiling = allowed
    return ceiling


@dataclass(frozen=True)
class Principal:
    """The caller of one request: tenant, effective role, and what authenticated them."""

    tenant: Tenant
    role: str
    user: object | None = None  # a User, or None for a key nobody owns
    api_key: ApiKey | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        if self.api_key is not None:
            return f"api_key:{self.api_key.prefix}"
        if self.user is not None:
            return f"user:{self.user.get_username()}"
        return "anonymous"

    def has_role(self, needed: str) -> bool:
        return role_at_least(self.role, needed)

    @property
    def grant_ceiling(self) -> str:
        """The most a key or invitation made by this caller may do: a person's role, or through a
        key, the lower of that key's own ceiling and the role."""
        if self.api_key is not None:
            return lower_role(self.api_key.role, self.role)
        return self.role

    def as_actor(self, *, ip: str | None = None, request_id: str = "") -> Actor:
        return Actor.from_principal(self, ip=ip, request_id=request_id)


@dataclass(frozen=True)
class Actor:
    """Who performs a write, for the audit log. Built from a Principal, or for the system."""

    user: object | None = None
    api_key: ApiKey | None = None
    label: str = "system"
    ip: str | None = None
    request_id: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(label=label)

    @classmethod
    def of_user(cls, user, *, ip: str | None = None, request_id: str = "") -> Actor:
        """A signed-in person acting outside any tenant (accepting an invitation)."""
        return cls(user=user, label=f"user:{user.get_username()}", ip=ip, request_id=request_id)

    @classmethod
    def from_principal(cls, principal: Principal, *, ip: str | None = None, request_id: str = "") -> Actor:
        return cls(user=principal.user, api_key=principal.api_key, label=principal.label, ip=ip, request_id=request_id)
