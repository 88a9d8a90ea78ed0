"""Skills: instructions an agent is given in its system prompt.

The catalog is a folder of markdown files with front matter (SKILLS_DIR, `skills/` in the
repository): `<name>.md` or `<name>/SKILL.md`, each

    ---
    name: summarizer
    description: One line saying when the skill applies.
    version: 1.0.0
    ---
    The instructions, in markdown.

A tenant installs catalog skills (or writes custom ones) and enables them per agent. A skill's
`sha256` is the hash of its markdown as installed; the audit compares it with the file on disk,
so a catalog file changed after installation (by an update, or by someone it should not have
been) shows up until the tenant reloads.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import IntegrityError, transaction
from rest_framework.exceptions import NotFound, ValidationError

from apps.agents.tokens import estimate_tokens
from apps.core.errors import Conflict
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor
from apps.tenancy.services import audit_record
from apps.tools.models import SKILL_NAME_PATTERN, AgentSkill, Skill

SKILL_FILE_MAX_BYTES = 64 * 1024
_NAME_RE = re.compile(SKILL_NAME_PATTERN)
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.DOTALL)


class SkillFileError(ValueError):
    """A catalog file that cannot be read as a skill."""


@dataclass(frozen=True)
class CatalogSkill:
    name: str
    description: str
    version: str
    instructions: str
    sha256: str
    path: str  # relative to SKILLS_DIR


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_skill(text: str, *, origin: str) -> dict[str, str]:
    """`{name, description, version, instructions}` from a skill's markdown."""
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        raise SkillFileError(f"{origin}: no front matter (a '---' block with name, description, version).")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise SkillFileError(f"{origin}: the front matter is not valid YAML.") from exc
    if not isinstance(meta, dict):
        raise SkillFileError(f"{origin}: the front matter must be a mapping.")
    name = str(meta.get("name") or "")
    if not _NAME_RE.match(name):
        raise SkillFileError(f"{origin}: 'name' must match {SKILL_NAME_PATTERN}.")
    instructions = match.group(2).strip()
    if not instructions:
        raise SkillFileError(f"{origin}: the skill has no instructions.")
    return {
        "name": name,
        "description": str(meta.get("description") or "").strip(),
        "version": str(meta.get("version") or "").strip()[:32],
        "instructions": instructions,
    }


def render_skill(*, name: str, description: str, version: str, instructions: str) -> str:
    """The markdown of a custom skill, the same shape as a catalog file (what its hash is of)."""
    meta = yaml.safe_dump({"name": name, "description": description, "version": version}, sort_keys=False)
    return f"---\n{meta}---\n{instructions.strip()}\n"


# --- the catalog on disk ---------------------------------------------------------------------------


def _catalog_dir() -> Path:
    return Path(settings.SKILLS_DIR)


def _candidate_files() -> list[Path]:
    root = _catalog_dir()
    if not root.is_dir():
        return []
    files = [path for path in root.glob("*.md") if path.name.lower() != "readme.md"]
    files += list(root.glob("*/SKILL.md"))
    return sorted(files)


def _read_catalog_file(path: Path) -> CatalogSkill:
    root = _catalog_dir().resolve()
    resolved = path.resolve()
    if root not in resolved.parents:
        raise SkillFileError(f"{path.name}: leads out of the catalog folder.")
    relative = str(resolved.relative_to(root))
    if resolved.stat().st_size > SKILL_FILE_MAX_BYTES:
        raise SkillFileError(f"{relative}: larger than {SKILL_FILE_MAX_BYTES} bytes.")
    try:
        text = resolved.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SkillFileError(f"{relative}: not UTF-8 text.") from exc
    fields = parse_skill(text, origin=relative)
    expected = path.parent.name if path.name == "SKILL.md" else path.stem
    if fields["name"] != expected:
        raise SkillFileError(f"{relative}: the front matter names '{fields['name']}', the file '{expected}'.")
    return CatalogSkill(sha256=sha256_text(text), path=relative, **fields)


def catalog_scan() -> tuple[dict[str, CatalogSkill], list[str]]:
    """Every readable catalog skill by name, and why the others could not be read."""
    skills: dict[str, CatalogSkill] = {}
    problems: list[str] = []
    for path in _candidate_files():
        try:
            skill = _read_catalog_file(path)
        except (OSError, SkillFileError) as exc:
            problems.append(str(exc))
            continue
        if skill.name in skills:
            problems.append(f"{skill.path}: a second skill named '{skill.name}'; ignored.")
            continue
        skills[skill.name] = skill
    return skills, problems


def catalog_get(name: str) -> CatalogSkill | None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return None
    for path in (_catalog_dir() / f"{name}.md", _catalog_dir() / name / "SKILL.md"):
        if path.is_file():
            try:
                return _read_catalog_file(path)
            except (OSError, SkillFileError):
                return None
    return None


def catalog_list(*, tenant: Tenant) -> dict[str, Any]:
    """The catalog, with whether the tenant has each skill installed and up to date."""
    skills, problems = catalog_scan()
    installed = {skill.name: skill for skill in Skill.objects.filter(tenant=tenant, source=Skill.Source.CATALOG)}
    entries = []
    for name, skill in sorted(skills.items()):
        mine = installed.get(name)
        entries.append(
            {
                "name": name,
                "description": skill.description,
                "version": skill.version,
                "sha256": skill.sha256,
                "path": skill.path,
                "installed": mine is not None,
                "skill_id": str(mine.pk) if mine else None,
                "up_to_date": mine is not None and mine.sha256 == skill.sha256,
            }
        )
    return {"skills": entries, "problems": problems}


# --- services --------------------------------------------------------------------------------------


def _audit(tenant: Tenant, actor: Actor, action: str, skill: Skill, data: dict | None = None) -> None:
    audit_record(tenant=tenant, actor=actor, action=action, target_type="skill", target_id=str(skill.pk), data=data)


def skill_install(*, tenant: Tenant, actor: Actor, name: str) -> Skill:
    entry = catalog_get(name)
    if entry is None:
        raise ValidationError({"name": [f"No skill '{name}' in the catalog."]})
    try:
        with transaction.atomic():
            skill = Skill.objects.create(
                tenant=tenant,
                name=entry.name,
                description=entry.description,
                instructions=entry.instructions,
                version=entry.version,
                sha256=entry.sha256,
                source=Skill.Source.CATALOG,
                source_path=entry.path,
            )
            _audit(tenant, actor, "skill.installed", skill, {"name": name, "sha256": entry.sha256})
    except IntegrityError as exc:
        raise Conflict(f"A skill named '{name}' is already installed.") from exc
    return skill


def skill_create(
    *, tenant: Tenant, actor: Actor, name: str, instructions: str, description: str = "", version: str = ""
) -> Skill:
    text = render_skill(name=name, description=description, version=version, instructions=instructions)
    try:
        with transaction.atomic():
            skill = Skill.objects.create(
                tenant=tenant,
                name=name,
                description=description,
                instructions=instructions.strip(),
                version=version,
                sha256=sha256_text(text),
                source=Skill.Source.CUSTOM,
            )
            _audit(tenant, actor, "skill.created", skill, {"name": name})
    except IntegrityError as exc:
        raise Conflict(f"A skill named '{name}' already exists.") from exc
    return skill


def skill_toggle(*, tenant: Tenant, actor: Actor, skill: Skill, enabled: bool | None = None) -> Skill:
    with transaction.atomic():
        locked = Skill.objects.select_for_update().get(pk=skill.pk, tenant=tenant)
        locked.enabled = (not locked.enabled) if enabled is None else enabled
        locked.save(update_fields=["enabled", "updated_at"])
        _audit(tenant, actor, "skill.enabled" if locked.enabled else "skill.disabled", locked)
    return locked


def skill_delete(*, tenant: Tenant, actor: Actor, skill: Skill) -> None:
    with transaction.atomic():
        _audit(tenant, actor, "skill.deleted", skill, {"name": skill.name})
        Skill.objects.filter(pk=skill.pk, tenant=tenant).delete()


def skill_activate(*, tenant: Tenant, actor: Actor, name: str, agent, active: bool = True) -> Skill:
    """Enable (or, with active=False, disable) a skill for one agent; a catalog skill the tenant
    has not installed yet is installed first."""
    skill = Skill.objects.filter(tenant=tenant, name=name).first()
    if skill is None:
        if not active:
            raise NotFound
        skill = skill_install(tenant=tenant, actor=actor, name=name)
    with transaction.atomic():
        if active:
            AgentSkill.objects.get_or_create(tenant=tenant, agent=agent, skill=skill)
        else:
            AgentSkill.objects.filter(tenant=tenant, agent=agent, skill=skill).delete()
        action = "skill.activated" if active else "skill.deactivated"
        _audit(tenant, actor, action, skill, {"agent": agent.name})
    return skill


def skills_reload(*, tenant: Tenant, actor: Actor) -> dict[str, list[str]]:
    """Re-read the tenant's installed catalog skills from disk, taking their new content and hash."""
    report: dict[str, list[str]] = {"updated": [], "unchanged": [], "missing": []}
    for skill in Skill.objects.filter(tenant=tenant, source=Skill.Source.CATALOG).order_by("name"):
        entry = catalog_get(skill.name)
        if entry is None:
            report["missing"].append(skill.name)
            continue
        if entry.sha256 == skill.sha256:
            report["unchanged"].append(skill.name)
            continue
        with transaction.atomic():
            Skill.objects.filter(pk=skill.pk, tenant=tenant).update(
                description=entry.description,
                instructions=entry.instructions,
                version=entry.version,
                sha256=entry.sha256,
                source_path=entry.path,
            )
            _audit(tenant, actor, "skill.reloaded", skill, {"old_sha256": skill.sha256, "sha256": entry.sha256})
        report["updated"].append(skill.name)
    return report


def skills_audit(*, tenant: Tenant) -> dict[str, Any]:
    """Installed catalog skills whose file is missing or differs from what was installed."""
    problems = []
    catalog = Skill.objects.filter(tenant=tenant, source=Skill.Source.CATALOG).order_by("name")
    for skill in catalog:
        entry = catalog_get(skill.name)
        disk = entry.sha256 if entry else None
        if disk == skill.sha256:
            continue
        problems.append(
            {
                "skill_id": str(skill.pk),
                "name": skill.name,
                "problem": "missing_file" if entry is None else "hash_mismatch",
                "db_sha256": skill.sha256,
                "disk_sha256": disk,
                "path": skill.source_path,
            }
        )
    return {"ok": not problems, "checked": len(catalog), "problems": problems}


# --- the prompt ------------------------------------------------------------------------------------

SKILLS_HEADER = "# Skills\nApply a skill's instructions when a request calls for it."


def skills_prompt_for(agent, token_budget: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The system-prompt section for the agent's enabled skills, and what went into it.

    Skills are taken by name while they fit `token_budget` (SKILLS_PROMPT_MAX_TOKENS by
    default); one that does not fit is left out (`included: false`) and the next is tried.
    One query; ("", []) for an agent without skills."""
    if agent is None or getattr(agent, "pk", None) is None:
        return "", []
    budget = settings.SKILLS_PROMPT_MAX_TOKENS if token_budget is None else token_budget
    links = (
        AgentSkill.objects.filter(agent_id=agent.pk, tenant_id=agent.tenant_id, skill__enabled=True)
        .select_related("skill")
        .order_by("skill__name")
    )
    skills = [link.skill for link in links]
    if not skills:
        return "", []
    remaining = budget - estimate_tokens(SKILLS_HEADER)
    sections, used = [], []
    for skill in skills:
        title = f"## Skill: {skill.name}" + (f" (v{skill.version})" if skill.version else "")
        heading = f"{title}\n{skill.description.strip()}" if skill.description.strip() else title
        section = f"{heading}\n\n{skill.instructions.strip()}"
        tokens = estimate_tokens(section) + 1
        included = tokens <= remaining
        if included:
            sections.append(section)
            remaining -= tokens
        used.append(
            {
                "id": str(skill.pk),
                "name": skill.name,
                "version": skill.version,
                "sha256": skill.sha256,
                "tokens": tokens,
                "included": included,
            }
        )
    text = "\n\n".join([SKILLS_HEADER, *sections]) if sections else ""
    return text, used
