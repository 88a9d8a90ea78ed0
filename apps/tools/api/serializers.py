from __future__ import annotations

from rest_framework import serializers

from apps.tools.models import PLUGIN_NAME_PATTERN, SKILL_NAME_PATTERN, AiRule, Plugin, Skill
from apps.tools.rules import RULE_MAX_CHARS
from apps.tools.workspace import PATH_MAX_CHARS

# --- plugins ---------------------------------------------------------------------------------------


class PluginToolSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="What models call it: `<plugin>__<tool>` (built-ins: the bare name).")
    remote_name = serializers.CharField(help_text="What the plugin or MCP server calls it.")
    description = serializers.CharField()
    side_effect = serializers.ChoiceField(choices=["read", "write", "external"])
    parameters = serializers.DictField(help_text="JSON schema of the arguments.")


class HeaderHintSerializer(serializers.Serializer):
    name = serializers.CharField()
    hint = serializers.CharField(help_text="At most the last four characters, e.g. `…3xYz`.")


class PluginSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True, help_text="Null for plugins the tenant has no row for yet.")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Plugin.Kind.choices)
    description = serializers.CharField()
    version = serializers.CharField()
    enabled = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Plugin.Status.choices)
    status_message = serializers.CharField()
    tools = PluginToolSerializer(many=True)
    discovered_at = serializers.DateTimeField(allow_null=True)
    registered_by = serializers.ChoiceField(
        choices=["platform", "operator", "tenant"],
        help_text="`platform`: built-in or a Python plugin installed on the platform; `operator`: a stdio MCP "
        "server an operator defined (enable or disable it; its command is not yours to change); `tenant`: "
        "an HTTP MCP server you registered.",
    )
    config = serializers.DictField(
        help_text="HTTP MCP: `transport`, `url`, `timeout_seconds`, `tool_side_effects`; stdio: only "
        "`transport`. Never headers (see `headers`)."
    )
    headers = HeaderHintSerializer(
        many=True, help_text="The stored headers of an HTTP MCP server: names and hints, never values."
    )


_CONFIG_HELP = (
    'An HTTP MCP server: `{"url", "headers"}`, optional `timeout_seconds` and `tool_side_effects` (remote '
    "tool -> read|write|external; default external). `headers` are stored encrypted and never returned. "
    "Stdio servers (`command`, `args`, ...) are refused: operators register those."
)
_SECRETS_HELP = '`{"headers": {Name: value}}`: more headers (the older spelling), stored the same way.'


class PluginCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(
        PLUGIN_NAME_PATTERN,
        max_length=32,
        help_text="Lower-case letters, digits and hyphens; its tools are named `<name>__<tool>`.",
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    config = serializers.DictField(help_text=_CONFIG_HELP)
    secrets = serializers.DictField(required=False, default=dict, write_only=True, help_text=_SECRETS_HELP)
    enabled = serializers.BooleanField(default=True)
    discover = serializers.BooleanField(default=True, help_text="Ask the server for its tools now (default true).")


class PluginUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    config = serializers.DictField(
        required=False,
        help_text=_CONFIG_HELP + " Replaces the stored config; with `headers` in it, they replace the stored "
        "headers (`{}` removes them), without, the stored headers stay.",
    )
    secrets = serializers.DictField(required=False, write_only=True, help_text=_SECRETS_HELP)


class ToggleSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False, help_text="The new state; absent: flip the current one.")


class ExecuteSerializer(serializers.Serializer):
    arguments = serializers.DictField(required=False, default=dict, help_text="The tool's arguments (JSON object).")
    agent = serializers.CharField(
        required=False, max_length=64, help_text="Run as this agent (name): its policy overrides apply."
    )


class ToolOutcomeSerializer(serializers.Serializer):
    tool = serializers.CharField()
    ok = serializers.BooleanField()
    output = serializers.CharField(help_text="What a model would see: JSON or text, capped in size.")
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()
    truncated = serializers.BooleanField()


class McpConnectionSerializer(serializers.Serializer):
    connected = serializers.BooleanField()
    connected_at = serializers.DateTimeField(allow_null=True)
    idle_seconds = serializers.FloatField()
    calls = serializers.IntegerField()
    server_name = serializers.CharField()
    pid = serializers.IntegerField(help_text="The process holding the connection (connections are per process).")


class McpClientSerializer(serializers.Serializer):
    name = serializers.CharField()
    transport = serializers.CharField()
    enabled = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Plugin.Status.choices)
    status_message = serializers.CharField()
    tool_count = serializers.IntegerField()
    discovered_at = serializers.DateTimeField(allow_null=True)
    connection = McpConnectionSerializer(allow_null=True, help_text="This web process's open connection, if any.")


def _page_of(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The `{count, next, previous, results}` shape DefaultPagination answers, for the schema."""
    fields = {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": item(many=True),
    }
    return type(name, (serializers.Serializer,), fields)


PluginPageSerializer = _page_of("PaginatedPluginList", PluginSerializer)
McpClientPageSerializer = _page_of("PaginatedMcpClientList", McpClientSerializer)


class DisconnectSerializer(serializers.Serializer):
    name = serializers.CharField()
    disconnected = serializers.BooleanField(help_text="Whether this process had a connection open.")


# --- editor ----------------------------------------------------------------------------------------


class EditorFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    content = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    modified_at = serializers.DateTimeField()


class EditorWriteSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=PATH_MAX_CHARS, trim_whitespace=False)
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)
    expected_sha256 = serializers.RegexField(
        r"^([0-9a-f]{64})?$",
        required=False,
        allow_blank=True,
        help_text="Write only if the file's current sha256 is this ('' = the file must not exist yet): 409 otherwise.",
    )


class EditorWriteResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    created = serializers.BooleanField()
    backup_id = serializers.CharField(allow_null=True, help_text="The backup of the previous content, if any.")


class BackupSerializer(serializers.Serializer):
    backup_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class BackupListSerializer(serializers.Serializer):
    path = serializers.CharField()
    backups = BackupSerializer(many=True)


class RestoreSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=PATH_MAX_CHARS, trim_whitespace=False)
    backup_id = serializers.CharField(max_length=64)


class RestoreResultSerializer(serializers.Serializer):
    path = serializers.CharField()
    restored_from = serializers.CharField()
    backup_id = serializers.CharField(allow_null=True, help_text="The backup of the content the restore replaced.")
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


# --- skills ----------------------------------------------------------------------------------------


class SkillSerializer(serializers.ModelSerializer):
    agents = serializers.SerializerMethodField(help_text="Names of the agents the skill is enabled for.")

    class Meta:
        model = Skill
        fields = [
            "id",
            "name",
            "description",
            "instructions",
            "version",
            "sha256",
            "source",
            "source_path",
            "enabled",
            "agents",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_agents(self, obj) -> list[str]:
        return sorted(link.agent.name for link in obj.agent_links.all())


class SkillCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(SKILL_NAME_PATTERN, max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
    instructions = serializers.CharField(max_length=32000)
    version = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)


class CatalogEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    version = serializers.CharField()
    sha256 = serializers.CharField()
    path = serializers.CharField()
    installed = serializers.BooleanField()
    skill_id = serializers.UUIDField(allow_null=True)
    up_to_date = serializers.BooleanField(help_text="Installed and the same content as the file.")


class CatalogSerializer(serializers.Serializer):
    skills = CatalogEntrySerializer(many=True)
    problems = serializers.ListField(child=serializers.CharField(), help_text="Files that are not valid skills.")


class CatalogNameSerializer(serializers.Serializer):
    name = serializers.RegexField(SKILL_NAME_PATTERN, max_length=64)


class CatalogActivateSerializer(CatalogNameSerializer):
    agent = serializers.CharField(max_length=64, help_text="The agent's name.")


class ReloadSerializer(serializers.Serializer):
    updated = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.ListField(child=serializers.CharField())
    missing = serializers.ListField(child=serializers.CharField())


class AuditProblemSerializer(serializers.Serializer):
    skill_id = serializers.UUIDField()
    name = serializers.CharField()
    problem = serializers.ChoiceField(choices=["missing_file", "hash_mismatch"])
    db_sha256 = serializers.CharField()
    disk_sha256 = serializers.CharField(allow_null=True)
    path = serializers.CharField()


class SkillAuditSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField()
    problems = AuditProblemSerializer(many=True)


# --- rules -----------------------------------------------------------------------------------------


class AiRuleSerializer(serializers.ModelSerializer):
    text = serializers.CharField(max_length=RULE_MAX_CHARS)
    category = serializers.RegexField(r"^[a-z][a-z0-9_-]{0,31}$", max_length=32, required=False, default="general")
    priority = serializers.IntegerField(min_value=-1000, max_value=1000, required=False, default=0)

    class Meta:
        model = AiRule
        fields = ["id", "text", "priority", "category", "enabled", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
