"""Settings for the clinic tracker, read from the environment (django-environ).

Every value that differs between a laptop and a clinic's server comes from an
environment variable; a malformed value stops the process at start-up rather than
being silently replaced by a default. Without ``DATABASE_URL`` / ``REDIS_URL`` and
with ``DJANGO_DEBUG=true`` the project runs embedded (SQLite and a filesystem
broker) so that ``make run`` needs no services; production requires both.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("CLINIC_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def env_bool(name: str, *, default: bool) -> bool:
    """A yes/no setting; anything but a clear yes or no stops the process
    (django-environ would read a typo such as "flase" as False)."""
    raw = env.str(name, default=str(default)).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"Error: {name} must be true or false, not {raw!r}.")


DEBUG = env_bool("DJANGO_DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-development-key-never-use-in-production")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: production must set it

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "testserver"}
if DEBUG and not set(ALLOWED_HOSTS) <= _LOCAL_HOSTS:
    # Django's debug page shows settings and data: never on a server other people reach.
    raise ImproperlyConfigured(
        "DJANGO_DEBUG=true is for a developer's own machine: it cannot serve DJANGO_ALLOWED_HOSTS "
        f"{', '.join(sorted(set(ALLOWED_HOSTS) - _LOCAL_HOSTS))}."
    )
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "clinic.apps.ClinicAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Two-factor authentication (TOTP and backup codes): see the two-factor block.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "two_factor",
    "clinic.apps.ClinicConfig",
    "patients.apps.PatientsConfig",
    "sessions.apps.InfusionsConfig",  # label "infusions": django.contrib.sessions owns "sessions"
    "maintenance.apps.MaintenanceConfig",
    "pgtrigger",
    "pghistory",
    "audit.apps.AuditConfig",  # after the clinical apps: it tracks their models
    "axes",  # last: its checks look at the authentication backends and middleware
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy on every response: see the CSP block
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): gave a two-factor code
    # The audit trail: a row per signed-in request, and who/where on every change.
    "audit.middleware.AccessLogMiddleware",
    "audit.middleware.HistoryContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "clinic.middleware.NoStoreForSignedInMiddleware",
    "clinic.middleware.SessionIdleTimeoutMiddleware",
    "clinic.middleware.TwoFactorMiddleware",  # two-factor sessions; CLINIC_REQUIRE_TWO_FACTOR
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the locked-out page
]

ROOT_URLCONF = "clinic.urls"
WSGI_APPLICATION = "clinic.wsgi.application"

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
                "clinic.context_processors.clinic",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
if DEBUG:
    DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'clinic.sqlite3'}")}
else:
    DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Embedded development database shared by web, worker and beat: take the write lock
    # when a transaction begins, so concurrent writers queue instead of racing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
else:
    # No JIT compilation: the clinic's statements are short, and compiling the few whose
    # estimated cost crosses jit_above_cost (the reminder scan, the outcome aggregates)
    # took longer than running them (make bench, docs/benchmarks.md). A DATABASE_URL
    # with ?options=... sets its own.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker and cache ----------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL and not DEBUG:
    raise ImproperlyConfigured("REDIS_URL must be set in production (the embedded broker is for development).")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task not acknowledged within this time is delivered again; reminders never
        # wait in the broker (they are database rows), so an hour is ample.
        "visibility_timeout": 3600,
    }
else:
    # Embedded default: a cache and a broker on the local filesystem, shared by the web
    # process, the worker and beat without any server.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    # The filesystem transport has no broadcast exchange for remote control.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False

# --- Celery ---------------------------------------------------------------------
CELERY_TIMEZONE = "UTC"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = False

# --- Authentication -------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Argon2 first: new and changed passwords are hashed with it; older hashes are upgraded
# at the next login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out account or address
    "django.contrib.auth.backends.ModelBackend",
]
# Lockout (django-axes): after this many failed logins, the account and the address are
# each locked for CLINIC_LOGIN_LOCKOUT_MINUTES, whether or not the account exists, so the
# lockout tells nothing about which accounts exist. It covers the login page, the admin
# and the API token endpoint.
AXES_FAILURE_LIMIT = env.int("CLINIC_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("CLINIC_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: per account, and per address
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "clinic.views.locked_out"
AXES_VERBOSE = False  # usernames (patients' email addresses) stay out of the logs
AXES_IPWARE_PROXY_COUNT = env.int("CLINIC_NUM_PROXIES", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Sessions end after this much inactivity (minutes): staff on shared workstations sooner.
CLINIC_STAFF_SESSION_IDLE_MINUTES = env.int("CLINIC_STAFF_SESSION_IDLE_MINUTES", default=15)
CLINIC_PATIENT_SESSION_IDLE_MINUTES = env.int("CLINIC_PATIENT_SESSION_IDLE_MINUTES", default=30)
SESSION_COOKIE_AGE = CLINIC_STAFF_SESSION_IDLE_MINUTES * 60  # until the first request sets the role's
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Two-factor authentication (django-otp, django-two-factor-auth: clinic/two_factor.py) ---
# Every staff user can turn on codes from an authenticator app (TOTP), with backup codes,
# from the header's "Two-factor authentication" link. An account with a device gives a
# code after its password, on the login page and at the API token endpoint; wrong codes
# count toward the lockout above. With CLINIC_REQUIRE_TWO_FACTOR=true, staff (clinicians,
# schedulers, superusers) without a device are sent to the setup page after logging in and
# can open nothing else (nor get an API token) until it is done; patients are never asked.
CLINIC_REQUIRE_TWO_FACTOR = env_bool("CLINIC_REQUIRE_TWO_FACTOR", default=False)
# After each wrong code a device refuses every code for 1, 2, 4, 8 ... seconds (on by default
# in django-otp; said here so that it stays on), for the app's codes and the backup codes.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# The admin does not show a device's secret key or QR code again (it would copy the phone).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
TWO_FACTOR_TOTP_DIGITS = 6
# Between the password and the code: the password must be given again after 5 minutes.
TWO_FACTOR_LOGIN_TIMEOUT = 300
# No "remember this browser" (TWO_FACTOR_REMEMBER_COOKIE_AGE unset): workstations are shared.
# The admin keeps its own login page (password only); clinic.middleware.TwoFactorMiddleware
# ends any session of an account with a device that did not give a code.
TWO_FACTOR_PATCH_ADMIN = False

# --- HTTPS and headers (production; DJANGO_DEBUG=true is local only) -------------------
# Behind a TLS-terminating proxy, CLINIC_NUM_PROXIES > 0 trusts its X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # the container's own health check, over loopback HTTP
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.int("CLINIC_NUM_PROXIES", default=0) else None
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp) ---------------------------------------------
# Every response carries this policy: only this site's own files run or style a page.
# No inline <script> or <style>, no style="" attributes, no eval, no 'unsafe-inline':
# data reaches scripts through json_script elements and data-* attributes (static/js/).
# Plotly's CSS rules ship as static/css/plotly.css (templates/includes/chart_scripts.html)
# instead of being injected; Swagger UI's page style is static/css/swagger-ui-page.css.
# One exception, on one view: /api/docs/ also allows data: images, Swagger UI's icons
# (clinic/api_urls.py). tests/test_csp.py checks the header of every page against this,
# tests/test_browser_csp.py that the pages run under it without a violation.
# CLINIC_CSP_REPORT_URI (optional): where browsers send violation reports (a collector
# of your own; this site has no endpoint for them).
CLINIC_CSP_REPORT_URI = env.str("CLINIC_CSP_REPORT_URI", default="")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "blob:"],  # blob: Plotly's "Download plot as a PNG" draws the chart as one
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],  # with X_FRAME_OPTIONS: never inside another site's frame
        **({"report-uri": [CLINIC_CSP_REPORT_URI]} if CLINIC_CSP_REPORT_URI else {}),
    },
}


# --- Encryption at rest (field level: clinic/encryption.py) ---------------------------
# Patients' contact details and free-text clinical notes are stored Fernet-encrypted.
# CLINIC_FIELD_ENCRYPTION_KEYS is a comma-separated list of Fernet keys: the first
# encrypts, every one decrypts. To rotate, put a new key first, run
# clinic.encryption.rotate_keys(), then drop the old key. The keys are not derived from
# DJANGO_SECRET_KEY, so rotating that loses nothing; losing them loses the encrypted
# fields, so keep them apart from (and as safe as) the database backups.
# Generate one: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
def _field_encryption_keys() -> list[str]:
    import os

    from cryptography.fernet import Fernet

    keys = [key.strip() for key in env.list("CLINIC_FIELD_ENCRYPTION_KEYS", default=[]) if key.strip()]
    if not keys and not DEBUG:
        raise ImproperlyConfigured(
            "CLINIC_FIELD_ENCRYPTION_KEYS must be set in production: comma-separated Fernet keys, "
            "the first encrypts (.env.example says how to generate one)."
        )
    if not keys:
        # Development default: one key generated into var/ on the first start, then reused
        # by web, worker and beat. Written to a temporary file and linked into place, so two
        # processes starting together still end up with the same key.
        path = VAR_DIR / "field-encryption.key"
        if not path.exists():
            VAR_DIR.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f"{path.name}.{os.getpid()}")
            with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                file.write(Fernet.generate_key())
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        keys = [path.read_text().strip()]
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"CLINIC_FIELD_ENCRYPTION_KEYS: key {number} is not a Fernet key (32 url-safe base64-encoded bytes)."
            ) from None
    return keys


CLINIC_FIELD_ENCRYPTION_KEYS = _field_encryption_keys()

# --- Internationalisation and time ----------------------------------------------
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True  # stored in UTC ...
TIME_ZONE = env.str("CLINIC_TIME_ZONE", default="America/New_York")  # ... shown in the clinic's zone

# --- Static files ---------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "clinic.staticfinders.PlotlyFinder",  # vendor/plotly.min.js from the pinned plotly package
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Email ----------------------------------------------------------------------
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
# A hung mail server must not hold a reminder past the task's time limit (seconds).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="clinic@localhost")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))

# --- Django REST Framework ------------------------------------------------------
# The API (/api/v1/) runs on the same services and access rules as the pages: see clinic/api.py.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",  # first, so that an anonymous call gets 401 with WWW-Authenticate
        "rest_framework.authentication.SessionAuthentication",  # the browser's login, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "clinic.pagination.PageNumberPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "clinic.api.handle_exception",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.ScopedRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    # Throttles count by client address: the REMOTE_ADDR, unless the server sits behind
    # this many proxies of its own (then the address they add to X-Forwarded-For). A
    # client's own X-Forwarded-For is never trusted.
    "NUM_PROXIES": env.int("CLINIC_NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        # Password guessing through the token endpoint, per client address.
        "token": env.str("CLINIC_API_TOKEN_RATE", default="10/minute"),
        # Every API call of a signed-in user, and of anonymous callers (the schema, failed logins).
        "user": env.str("CLINIC_API_USER_RATE", default="1200/minute"),
        "anon": env.str("CLINIC_API_ANON_RATE", default="60/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# API tokens (django-rest-knox): stored hashed, expire after this many hours.
CLINIC_API_TOKEN_HOURS = env.int("CLINIC_API_TOKEN_HOURS", default=10)
REST_KNOX = {"TOKEN_TTL": dt.timedelta(hours=CLINIC_API_TOKEN_HOURS), "AUTO_REFRESH": False}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ketamine clinic API",
    "DESCRIPTION": (
        "Patients, induction series, infusions, PHQ-9s, boosters and maintenance plans. "
        "Log in with POST /api/v1/auth/token/ and send 'Authorization: Token <token>'. "
        "Times are ISO 8601 with their UTC offset; clinic days are dates in the clinic's time zone."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "InfusionKindEnum": "sessions.models.SessionKind",
        "InfusionStatusEnum": "sessions.models.SessionStatus",
        "SideEffectKindEnum": "sessions.models.SideEffectKind",
        "SideEffectSeverityEnum": "sessions.models.SideEffectSeverity",
        "PatientStatusEnum": "patients.models.PatientStatus",
        "PHQ9SeverityEnum": "patients.phq9.Severity",
        "NotificationKindEnum": "maintenance.models.NotificationKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "clinic.api.document_errors",
    ],
    # Swagger UI from the sidecar package's static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Logging --------------------------------------------------------------------
# Logs carry no patient data: paths name records by opaque ids, query strings are not
# logged (gunicorn's access log format in the Dockerfile), and exception messages, which
# can quote a row's values, are left out of tracebacks (clinic/logging.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "clinic.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "filters": {"redact_exception_arguments": {"()": "clinic.logging.RedactExceptionArguments"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_exception_arguments"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
# The worker logs through the handler above instead of replacing it with its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Backups (manage.py backup_db / restore_db; README "Backups") ---------------------
# Where backup_db writes its pg_dump files: created mode 0700, each file 0600 (they hold
# every patient's record). Put it on encrypted storage that is itself backed up off-site.
CLINIC_BACKUP_DIR = Path(env.str("CLINIC_BACKUP_DIR", default=str(VAR_DIR / "backups")))

# --- The clinic ---------------------------------------------------------------------
# Shown on every page and in emails: patients' emails should not reveal the treatment,
# so choose a name a patient would be comfortable receiving mail from.
CLINIC_NAME = env.str("CLINIC_NAME", default="Lakeside Wellness")

# --- Clinic rules (see ../shared/CLINICAL.md; each is a setting, never a literal) ---
# Weekdays the clinic is closed, Monday=0 ... Sunday=6. Closed dates (holidays) are
# kept in the database (sessions.ClosedDay).
CLINIC_CLOSED_WEEKDAYS = env.list("CLINIC_CLOSED_WEEKDAYS", cast=int, default=[5, 6])
# Local time of day given to sessions materialised from a protocol, "HH:MM".
CLINIC_DEFAULT_APPOINTMENT_TIME = env.str("CLINIC_DEFAULT_APPOINTMENT_TIME", default="09:00")
# A gap longer than this inside an induction series is reported (days).
CLINIC_SERIES_MAX_GAP_DAYS = env.int("CLINIC_SERIES_MAX_GAP_DAYS", default=7)
# Baseline PHQ-9: the most recent one taken this many days before the first infusion.
CLINIC_BASELINE_WINDOW_DAYS = env.int("CLINIC_BASELINE_WINDOW_DAYS", default=14)
# Booster reminders: "due soon" starts this many days before the due date.
CLINIC_BOOSTER_LEAD_DAYS = env.int("CLINIC_BOOSTER_LEAD_DAYS", default=7)
# Without a maximum interval in the plan, a booster is overdue this many days after due.
CLINIC_BOOSTER_OVERDUE_GRACE_DAYS = env.int("CLINIC_BOOSTER_OVERDUE_GRACE_DAYS", default=7)
# Overdue boosters are reminded again every this many days.
CLINIC_BOOSTER_OVERDUE_REPEAT_DAYS = env.int("CLINIC_BOOSTER_OVERDUE_REPEAT_DAYS", default=7)
# Local time ("HH:MM") at which a day's booster reminders go out.
CLINIC_REMINDER_SEND_TIME = env.str("CLINIC_REMINDER_SEND_TIME", default="08:00")
# An unacknowledged item-9 alert is raised again every this many minutes.
CLINIC_SAFETY_REALERT_MINUTES = env.int("CLINIC_SAFETY_REALERT_MINUTES", default=30)
# Patients who agreed get an email this many days before a booster appointment.
CLINIC_PATIENT_REMINDER_DAYS = env.int("CLINIC_PATIENT_REMINDER_DAYS", default=2)
# A reminder scan older than this many minutes shows a warning.
CLINIC_REMINDER_SCAN_STALE_MINUTES = env.int("CLINIC_REMINDER_SCAN_STALE_MINUTES", default=10)
# Failed email deliveries are retried this many times, waiting 1, 2, 4 ... minutes.
CLINIC_REMINDER_MAX_ATTEMPTS = env.int("CLINIC_REMINDER_MAX_ATTEMPTS", default=6)
# The address staff and patients open from an email (no patient data in emails).
CLINIC_BASE_URL = env.str("CLINIC_BASE_URL", default="http://127.0.0.1:8000")
# Outcomes: a series' result is the latest PHQ-9 within this many days after its last infusion.
CLINIC_AFTER_SERIES_DAYS = env.int("CLINIC_AFTER_SERIES_DAYS", default=14)
# A patient may fill in the PHQ-9 in the portal at most once in this many days (1 = once a day).
CLINIC_PORTAL_PHQ9_MIN_DAYS = env.int("CLINIC_PORTAL_PHQ9_MIN_DAYS", default=1)
# Crisis resources shown at once to a patient who answers item 9 above 0 (US defaults).
CLINIC_CRISIS_LINE = env.str("CLINIC_CRISIS_LINE", default="988")
CLINIC_EMERGENCY_NUMBER = env.str("CLINIC_EMERGENCY_NUMBER", default="911")
# Default symptom triggers of a new maintenance plan (PHQ-9 points).
CLINIC_TRIGGER_PHQ9_THRESHOLD = env.int("CLINIC_TRIGGER_PHQ9_THRESHOLD", default=10)
CLINIC_TRIGGER_PHQ9_RISE = env.int("CLINIC_TRIGGER_PHQ9_RISE", default=5)
# Vital-sign thresholds (mmHg, beats/min, %).
CLINIC_VITALS_REVIEW_SYSTOLIC = env.int("CLINIC_VITALS_REVIEW_SYSTOLIC", default=140)
CLINIC_VITALS_REVIEW_DIASTOLIC = env.int("CLINIC_VITALS_REVIEW_DIASTOLIC", default=90)
CLINIC_VITALS_ALERT_SYSTOLIC = env.int("CLINIC_VITALS_ALERT_SYSTOLIC", default=180)
CLINIC_VITALS_ALERT_DIASTOLIC = env.int("CLINIC_VITALS_ALERT_DIASTOLIC", default=100)
CLINIC_VITALS_ALERT_HEART_RATE = env.int("CLINIC_VITALS_ALERT_HEART_RATE", default=110)
CLINIC_VITALS_ALERT_SPO2_BELOW = env.int("CLINIC_VITALS_ALERT_SPO2_BELOW", default=92)
