"""Login protection and production hardening: lockout, Argon2, password rules, idle
sessions, API throttling, `check --deploy`, and the debug page kept off servers."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from tests.factories import PASSWORD, UserFactory

ROOT = Path(__file__).resolve().parent.parent
NEW_YORK = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
def fresh_counters():
    """Lockouts live in the database (rolled back); throttle counts in the cache."""
    cache.clear()
    yield
    cache.clear()


def log_in(client, username: str, password: str, address: str = "198.51.100.7"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


# --- Lockout (django-axes) -------------------------------------------------------------------


@pytest.mark.django_db
def test_an_account_is_locked_after_five_failures_even_with_the_right_password(client, clinician):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "dr_lee", "guess").status_code == 200  # the form again, with its error
    assert log_in(client, "dr_lee", "guess").status_code == 429  # the fifth failure locks
    response = log_in(client, "dr_lee", PASSWORD)
    assert response.status_code == 429
    assert b"Too many attempts" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_locked_account_looks_the_same_whether_it_exists_or_not(client, clinician):
    answers = []
    for username in ("dr_lee", "nobody_by_this_name"):
        for attempt in range(settings.AXES_FAILURE_LIMIT):
            # A different address each time: only the account's own count can lock it.
            log_in(client, username, "guess", address=f"192.0.2.{attempt + 1}")
        response = log_in(client, username, "guess", address="192.0.2.99")
        answers.append((response.status_code, response.content.decode().replace(username, "USER")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 429


@pytest.mark.django_db
def test_an_address_is_locked_after_five_failures_across_accounts(client, clinician):
    for number in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"someone{number}", "guess", address="203.0.113.5")
    assert log_in(client, "dr_lee", PASSWORD, address="203.0.113.5").status_code == 429
    assert log_in(client, "dr_lee", PASSWORD, address="203.0.113.6").status_code == 302  # another address


@pytest.mark.django_db
def test_the_lockout_ends_after_the_cool_off(client, clinician):
    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            log_in(client, "dr_lee", "guess")
        assert log_in(client, "dr_lee", PASSWORD).status_code == 429
        clock.shift(settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=1))
        assert log_in(client, "dr_lee", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_api_token_endpoint_shares_the_lockout(clinician):
    api = APIClient(REMOTE_ADDR="198.51.100.20")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert api.post("/api/v1/auth/token/", {"username": "dr_lee", "password": "guess"}).status_code == 400
    assert api.post("/api/v1/auth/token/", {"username": "dr_lee", "password": "guess"}).status_code == 429
    response = APIClient(REMOTE_ADDR="198.51.100.21").post(
        "/api/v1/auth/token/", {"username": "dr_lee", "password": PASSWORD}
    )
    assert response.status_code == 429  # the account is locked, from any address
    assert "Too many failed attempts" in response.json()["detail"]
    assert "token" not in response.json()


# --- Passwords -----------------------------------------------------------------------------------


def test_production_hashes_passwords_with_argon2():
    from clinic import settings as production

    assert production.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    with override_settings(PASSWORD_HASHERS=production.PASSWORD_HASHERS):
        assert make_password("a long enough passphrase").startswith("argon2$argon2id$")


@pytest.mark.parametrize(
    "password",
    ["short1", "password1234", "123456789012", "dr_lee_clinic"],
    ids=["too short", "common", "only digits", "like the username"],
)
@pytest.mark.django_db
def test_weak_passwords_are_refused(password):
    user = UserFactory.build(username="dr_lee_clinic", email="dr_lee_clinic@clinic.test")
    with pytest.raises(ValidationError):
        validate_password(password, user=user)


# --- Idle sessions -----------------------------------------------------------------------------


@pytest.fixture
def production_timeouts(settings):
    from clinic import settings as production

    settings.CLINIC_STAFF_SESSION_IDLE_MINUTES = production.CLINIC_STAFF_SESSION_IDLE_MINUTES
    settings.CLINIC_PATIENT_SESSION_IDLE_MINUTES = production.CLINIC_PATIENT_SESSION_IDLE_MINUTES
    settings.SESSION_COOKIE_AGE = production.SESSION_COOKIE_AGE
    assert (settings.CLINIC_STAFF_SESSION_IDLE_MINUTES, settings.CLINIC_PATIENT_SESSION_IDLE_MINUTES) == (15, 30)


@pytest.mark.django_db
@pytest.mark.usefixtures("production_timeouts")
def test_a_staff_session_ends_after_fifteen_idle_minutes(client, clinician):
    with time_machine.travel(NOW, tick=False) as clock:
        client.force_login(clinician)
        assert client.get(reverse("patients:list")).status_code == 200
        clock.shift(dt.timedelta(minutes=14))
        assert client.get(reverse("patients:list")).status_code == 200  # activity restarts the clock
        clock.shift(dt.timedelta(minutes=14))
        assert client.get(reverse("patients:list")).status_code == 200
        clock.shift(dt.timedelta(minutes=settings.CLINIC_STAFF_SESSION_IDLE_MINUTES, seconds=1))
        response = client.get(reverse("patients:list"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.usefixtures("production_timeouts")
def test_a_patient_session_lasts_its_own_idle_time(client, patient):
    with time_machine.travel(NOW, tick=False) as clock:
        client.force_login(patient.user)
        assert client.get(reverse("portal:home")).status_code == 200
        clock.shift(dt.timedelta(minutes=settings.CLINIC_STAFF_SESSION_IDLE_MINUTES + 5))
        assert client.get(reverse("portal:home")).status_code == 200
        clock.shift(dt.timedelta(minutes=settings.CLINIC_PATIENT_SESSION_IDLE_MINUTES, seconds=1))
        assert client.get(reverse("portal:home")).status_code == 302


# --- API throttling ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_throttles_a_user_past_their_rate(clinician, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {**UserRateThrottle.THROTTLE_RATES, "user": "3/minute"})
    api = APIClient()
    api.force_authenticate(clinician)
    assert [api.get("/api/v1/me/").status_code for _ in range(4)] == [200, 200, 200, 429]


# --- Headers and production settings ----------------------------------------------------------


@pytest.mark.django_db
def test_pages_carry_the_security_headers(client, clinician):
    client.force_login(clinician)
    response = client.get(reverse("patients:list"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def production_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CLINIC_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="clinic.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DATABASE_URL="postgres://clinic:secret@db.internal:5432/clinic",
        REDIS_URL="redis://cache.internal:6379/0",
        DJANGO_ALLOWED_HOSTS="clinic.example.org",
        CLINIC_FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        **extra,
    )
    return env


def test_production_settings_pass_check_deploy_without_a_warning():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_debug_page_cannot_be_turned_on_for_a_public_host():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=production_env(DJANGO_DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_DEBUG=true is for a developer's own machine" in result.stderr


def test_the_production_access_log_leaves_out_query_strings():
    """Search terms (names, record numbers) travel in query strings: the access log writes
    the path only (gunicorn's %(U)s), never the request line or the query."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = dockerfile[dockerfile.index("CMD [") :]
    assert "--access-logformat" in command
    assert "%(U)s" in command
    assert not any(field in command for field in ("%(r)s", "%(q)s", "%(u)s"))
