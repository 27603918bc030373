"""OpsPortal settings, read from the environment.

Every variable is documented in README.md ("Configuration"). A bad value stops
start-up with a message naming the variable, rather than running half-configured.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# Arrow's allocator returns freed memory to the system at once (drift profiling of big uploads would otherwise
# keep its parse buffers); read when pyarrow is first imported, so it is set before any app loads.
os.environ.setdefault("JE_ARROW_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("OPSPORTAL_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


OPSPORTAL_ENV = env_str("OPSPORTAL_ENV", "development")
if OPSPORTAL_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"OPSPORTAL_ENV={OPSPORTAL_ENV!r} must be 'development' or 'production'.")
PRODUCTION = OPSPORTAL_ENV == "production"


def _development_secret_key() -> str:
    """A random key generated once and kept in var/, so sessions survive restarts."""
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


if PRODUCTION:
    SECRET_KEY = env_str("SECRET_KEY")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("SECRET_KEY must be set to a random string of at least 50 characters in production.")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set (comma-separated host names) in production.")
else:
    SECRET_KEY = env_str("SECRET_KEY") or _development_secret_key()
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "opsportal.accounts",
    "opsportal.audit",
    "opsportal.system",
    "opsportal.portal",
    "aiops",
    "mlops",
    "llmops",
]

MIDDLEWARE = [
    "opsportal.system.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before CSRF, so a request authenticated by API token is exempt from it.
    "opsportal.accounts.middleware.LoginRequiredMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "opsportal.audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "opsportal.urls"
WSGI_APPLICATION = "opsportal.wsgi.application"

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
                "opsportal.accounts.context_processors.roles",
                "opsportal.portal.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'opsportal.sqlite3'}"
if urlparse(DATABASE_URL).scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme must be postgres:// or sqlite:///, got {DATABASE_URL.split(':')[0]!r}."
    )
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 600), conn_health_checks=True)
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not valid: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] not in {"", ":memory:"}:
        Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web process read while the worker writes; IMMEDIATE avoids
    # "database is locked" on lock upgrades; a connection is per-thread anyway.
    _db["CONN_MAX_AGE"] = 0
    # A file, not memory: the test live server and in-thread Celery worker share it.
    # One per test process, so two test runs on one machine don't share it.
    _db["TEST"] = {"NAME": str(VAR_DIR / f"test-opsportal-{os.getpid()}.sqlite3")}
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, broker, cache ------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
for _name, _value in (("REDIS_URL", REDIS_URL), ("CELERY_BROKER_URL", env_str("CELERY_BROKER_URL"))):
    if _value and urlparse(_value).scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "memory"}:
        raise ImproperlyConfigured(f"{_name}={_value!r} is not a Redis or AMQP URL.")
if REDIS_URL and urlparse(REDIS_URL).scheme not in {"redis", "rediss"}:
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must start with redis:// or rediss://.")

BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://localhost/"
if CELERY_BROKER_URL.startswith("filesystem"):
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Redis: a task not acknowledged within this time is redelivered, so it must
    # exceed the longest task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, 60)}

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = None  # no result backend, so no celery.backend_cleanup entry in beat
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing gives up quickly when the broker is down: the row is already
# committed and a sweeper re-enqueues it, so a request never hangs on Redis.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HEARTBEAT_SECONDS = env_int("CELERY_WORKER_HEARTBEAT_SECONDS", 15, 1)

# --- Auth ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "portal:overview"
LOGOUT_REDIRECT_URL = "accounts:login"
# Paths served without a session or token (everything else needs one).
OPSPORTAL_PUBLIC_PATHS = ["/accounts/login/", "/healthz", "/readyz"]

# --- API ---------------------------------------------------------------------
# Each worker keeps the API tokens it checked for at most this long (0: no cache); every change to a
# token, user or role invalidates them everywhere at once (opsportal/accounts/token_cache.py).
TOKEN_CACHE_SECONDS = env_int("TOKEN_CACHE_SECONDS", 60)
TOKEN_CACHE_SIZE = env_int("TOKEN_CACHE_SIZE", 10_000, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "opsportal.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["opsportal.accounts.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "opsportal.api.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        # DRF's rates and semantics at one Redis round trip (see the module).
        "opsportal.accounts.throttling.AnonRateThrottle",
        "opsportal.accounts.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/minute"),
        "user": env_str("API_THROTTLE_USER", "6000/minute"),
    },
    "EXCEPTION_HANDLER": "opsportal.api.exception_handler",
    # JSON, forms and uploads as DRF parses them, refusing what PostgreSQL cannot store (NUL characters).
    "DEFAULT_PARSER_CLASSES": [
        "opsportal.parsers.JSONParser",
        "opsportal.parsers.FormParser",
        "opsportal.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "opsportal.negotiation.FastContentNegotiation",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OpsPortal API",
    "DESCRIPTION": "AIOps, MLOps and LLMOps in one portal. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # The schema and docs need a login or token like every other endpoint.
    "SERVE_PERMISSIONS": ["opsportal.accounts.permissions.RolePermission"],
    # Enum names as drf-spectacular makes them, then links from the answers that hand out identifiers.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "opsportal.openapi.add_links"],
    "ENUM_NAME_OVERRIDES": {
        "SeverityEnum": "aiops.models.SEVERITY_CHOICES",
        "IntegrationKindEnum": "aiops.models.Integration.Kind",
        "ChannelKindEnum": "aiops.models.NotificationChannel.Kind",
        "AlertStatusEnum": "aiops.models.Alert.Status",
        "IncidentStatusEnum": "aiops.models.Incident.Status",
        "StageEnum": "mlops.models.Stage",
        "ModelVersionStatusEnum": "mlops.models.ModelVersion.Status",
        "ApprovalStatusEnum": "mlops.models.ApprovalRequest.Status",
        "ApprovalKindEnum": "mlops.models.ApprovalRequest.Kind",
        "WebhookDeliveryStatusEnum": "mlops.models.WebhookDelivery.Status",
        "RegistryEventEnum": "mlops.models.Webhook.Event",
        "MonitorCheckSeverityEnum": "mlops.services.monitor_checks.SEVERITIES",
        "MonitoringBatchSourceEnum": "mlops.models.MonitoringBatch.Source",
        "ScoreSourceEnum": "llmops.models.scores.Score.Source",
        "AnnotationItemStatusEnum": "llmops.models.scores.AnnotationItem.Status",
    },
}

# --- Internationalisation, static ---------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
if not PRODUCTION:
    # Filled by collectstatic in production; in development WhiteNoise serves from the finders.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Plotly.js comes from the pinned plotly package, so JS and Python always match.
    ("vendor/plotly", Path(__import__("plotly").__file__).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
# Uploaded files (model artifacts) go through Django's storage API: this folder by default; set
# STORAGES["default"] to any django-storages backend (S3, GCS, Azure) in a settings override.
MEDIA_ROOT = Path(env_str("OPSPORTAL_MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "/media/"

# --- Security ----------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # /healthz and /readyz are probed over plain HTTP from inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# Number of hops of X-Forwarded-For to trust for the client IP in the audit log.
OPSPORTAL_TRUSTED_PROXIES = env_int("OPSPORTAL_TRUSTED_PROXIES", 0)

# --- Outbound: email and webhooks -------------------------------------------------------
OPSPORTAL_BASE_URL = env_str("OPSPORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Hosts or networks (CIDR) that outgoing webhooks may reach although they are not public addresses.
OPSPORTAL_OUTBOUND_ALLOWLIST = env_list("OPSPORTAL_OUTBOUND_ALLOWLIST", [])
# host:port of the demo model (`manage.py serve_demo_llm`, started by `make run`); the demo provider points here.
OPSPORTAL_DEMO_LLM_BIND = env_str("OPSPORTAL_DEMO_LLM_BIND", "127.0.0.1:8001")
if OPSPORTAL_DEMO_LLM_BIND.rpartition(":")[0] == "" or not OPSPORTAL_DEMO_LLM_BIND.rpartition(":")[2].isdigit():
    raise ImproperlyConfigured(f"OPSPORTAL_DEMO_LLM_BIND must be host:port, got {OPSPORTAL_DEMO_LLM_BIND!r}.")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, 1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "opsportal@localhost")

# --- AIOps ingest ----------------------------------------------------------------------
# Bodies above this size are refused with 413 before they are parsed.
AIOPS_MAX_BODY_BYTES = env_int("AIOPS_MAX_BODY_BYTES", 5 * 1024 * 1024, 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, AIOPS_MAX_BODY_BYTES)
# Alert labels and annotations are cut to these limits where they are normalised, with a visible mark; the
# alert is kept and its raw payload stays whole (aiops.parsers.AlertLimits, docs/aiops.md "Limits").
AIOPS_ALERT_LIMITS = {
    "label_key_length": env_int("AIOPS_LABEL_KEY_MAX_LENGTH", 128, 16),
    "label_value_length": env_int("AIOPS_LABEL_VALUE_MAX_LENGTH", 1024, 64),
    "labels": env_int("AIOPS_MAX_LABELS", 64, 1),
    "annotation_key_length": env_int("AIOPS_ANNOTATION_KEY_MAX_LENGTH", 128, 16),
    "annotation_value_length": env_int("AIOPS_ANNOTATION_VALUE_MAX_LENGTH", 16384, 64),
    "annotations": env_int("AIOPS_MAX_ANNOTATIONS", 64, 1),
}

# --- AIOps metric collection (docs/aiops.md "Metrics") ---------------------------------------
# Raw samples are kept this many days (daily partitions on PostgreSQL), 5-minute rollups this many.
METRICS_RAW_RETENTION_DAYS = env_int("METRICS_RAW_RETENTION_DAYS", 8, 1)
METRICS_ROLLUP_RETENTION_DAYS = env_int("METRICS_ROLLUP_RETENTION_DAYS", 400, 1)
# A scrape whose body is larger, or that exposes more samples, fails (like Prometheus's body_size_limit
# and sample_limit).
METRICS_SCRAPE_MAX_BYTES = env_int("METRICS_SCRAPE_MAX_BYTES", 32 * 1024 * 1024, 1024)
METRICS_SCRAPE_SAMPLE_LIMIT = env_int("METRICS_SCRAPE_SAMPLE_LIMIT", 200_000, 1)

# --- AIOps logs (docs/aiops.md "Logs") -----------------------------------------------------
# Log records are kept this many days (daily partitions on PostgreSQL, dropped whole by a periodic task).
LOGS_RETENTION_DAYS = env_int("LOGS_RETENTION_DAYS", 7, 1)
# A log push larger than this, compressed or once decompressed, is refused with 413.
LOGS_MAX_BODY_BYTES = env_int("LOGS_MAX_BODY_BYTES", 16 * 1024 * 1024, 1024)

# --- LLMOps evaluations --------------------------------------------------------------------
# First retry delay of a failed model call (doubling per attempt, with jitter), when the provider
# sends no Retry-After.
LLMOPS_RETRY_BASE_SECONDS = float(env_str("LLMOPS_RETRY_BASE_SECONDS", "1.0"))
# A run's worker renews its lease while it works; one silent this long is taken for dead and the run resumed.
LLMOPS_LEASE_SECONDS = env_int("LLMOPS_LEASE_SECONDS", 60, 5)

# --- LLMOps traces (docs/llmops.md "Traces") -----------------------------------------------
# An OTLP trace export larger than this, compressed or once decompressed, is refused with 413.
LLMOPS_OTLP_MAX_BODY_BYTES = env_int("LLMOPS_OTLP_MAX_BODY_BYTES", 16 * 1024 * 1024, 1024)
# Trace exports one web process stores at once; more wait for none of them and get 503 with Retry-After.
LLMOPS_OTLP_MAX_CONCURRENT = env_int("LLMOPS_OTLP_MAX_CONCURRENT", 4, 1)
# Spans are kept this many days (daily partitions on PostgreSQL, dropped whole by a periodic task).
LLMOPS_TRACES_RETENTION_DAYS = env_int("LLMOPS_TRACES_RETENTION_DAYS", 30, 1)
# A span's input and output (prompt, completion) are kept up to this many characters, the cut marked.
LLMOPS_TRACE_MAX_IO_CHARS = env_int("LLMOPS_TRACE_MAX_IO_CHARS", 32 * 1024, 256)

# --- MLOps registry ----------------------------------------------------------------------
# Artifact uploads above this size are refused with a 400 that names the limit.
MLOPS_MAX_ARTIFACT_BYTES = env_int("MLOPS_MAX_ARTIFACT_BYTES", 500 * 1024 * 1024, 1)

# --- MLOps monitoring (docs/mlops.md "Monitoring data") ------------------------------------
# A reference upload (CSV or Parquet) above this size is refused with 413 naming the limit.
MLOPS_REFERENCE_MAX_BYTES = env_int("MLOPS_REFERENCE_MAX_BYTES", 1024 * 1024 * 1024, 1024)
# A production batch (JSON rows, CSV or Parquet body) above this size is refused with 413 naming the limit.
MLOPS_BATCH_MAX_BYTES = env_int("MLOPS_BATCH_MAX_BYTES", 256 * 1024 * 1024, 1024)
# A batch's rows are kept as Parquet for its report up to this size; above it only its profile is kept.
MLOPS_BATCH_KEEP_BYTES = env_int("MLOPS_BATCH_KEEP_BYTES", 64 * 1024 * 1024, 0)

# --- AIOps uptime checks (docs/aiops.md "Checks") ------------------------------------------
# Check results and pings older than this are deleted (aiops.prune-check-history); uptime is read from
# hourly counts, kept longer (status pages show 90 days).
AIOPS_CHECK_RESULT_RETENTION_DAYS = env_int("AIOPS_CHECK_RESULT_RETENTION_DAYS", 31, 1)
AIOPS_CHECK_PING_RETENTION_DAYS = env_int("AIOPS_CHECK_PING_RETENTION_DAYS", 31, 1)
AIOPS_CHECK_STATS_RETENTION_DAYS = env_int("AIOPS_CHECK_STATS_RETENTION_DAYS", 400, 90)
# Checks one dispatcher claims at a time, and how many of them are in flight at once on its event loop.
AIOPS_CHECKS_BATCH = env_int("AIOPS_CHECKS_BATCH", 500, 1)
AIOPS_CHECKS_CONCURRENCY = env_int("AIOPS_CHECKS_CONCURRENCY", 200, 1)
# A claimed check's lease is its timeout plus this; a dead worker's checks run again once it ends.
AIOPS_CHECKS_LEASE_MARGIN_SECONDS = env_int("AIOPS_CHECKS_LEASE_MARGIN_SECONDS", 30, 1)
# Pings accepted per heartbeat check and minute; more get 429 with Retry-After.
AIOPS_PING_RATE_PER_MINUTE = env_int("AIOPS_PING_RATE_PER_MINUTE", 120, 1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # Django's own handlers would print each record a second time through the root logger.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # The openai SDK's HTTP client logs every request at INFO: one line per model call of a run.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
