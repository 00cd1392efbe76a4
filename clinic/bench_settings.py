"""Settings for ``make bench``: production settings on the benchmark's own database,
served over plain HTTP on the local machine, with the two baseline views of
clinic/bench_urls.py. Never used to serve a clinic."""

import os
import warnings

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-not-for-any-clinic-0123456789")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
# The orchestrator's own connection (it creates the clinics' databases); each clinic's
# processes get DATABASE_URL set to that clinic's database.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# A fixed Fernet key: the benchmark's data is generated, never a patient's.
os.environ.setdefault("CLINIC_FIELD_ENCRYPTION_KEYS", "YmVuY2gtb25seS1rZXktZm9yLWdlbmVyYXRlZC1kYXQ=")
# The load generator is one client: the per-user throttle would measure itself.
os.environ.setdefault("CLINIC_API_USER_RATE", "1000000/minute")

from clinic.settings import *  # noqa: F403

ROOT_URLCONF = "clinic.bench_urls"
# Plain HTTP on 127.0.0.1 (check --deploy is tested on the real settings).
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
# Static files from the finders: nothing is collected for a benchmark.
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# Nothing is collected into STATIC_ROOT for a benchmark (the finders serve the files).
warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")
