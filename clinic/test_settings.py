"""Settings for the test suite: the real settings on the local PostgreSQL and Redis.

Both addresses can be overridden by ``DATABASE_URL`` / ``REDIS_URL``; tests never fall
back to SQLite or an in-memory broker (tests/conftest.py checks both are reachable).
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/clinic")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("CLINIC_FIELD_ENCRYPTION_KEYS", "nTdG-_DMr-yw456XuZhIjy5BwR-tSiOhAyrq9UaGnR4=")

from clinic.settings import *  # noqa: F403

# Fast hashing: the tests create many users and never attack their passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Static files are served from the finders in tests; nothing is collected.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# The test client and the live server speak plain HTTP on the local machine (production
# settings are checked by tests/test_security.py with manage.py check --deploy).
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
# Many tests travel days ahead with one signed-in client: sessions here outlive them. The
# idle timeouts are tested with their production values in tests/test_security.py.
CLINIC_STAFF_SESSION_IDLE_MINUTES = CLINIC_PATIENT_SESSION_IDLE_MINUTES = 60 * 24 * 365
SESSION_COOKIE_AGE = CLINIC_STAFF_SESSION_IDLE_MINUTES * 60
