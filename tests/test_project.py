"""The project itself: settings, checks, migrations, health and a real Celery worker on Redis."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from clinic.checks import check_clinic_settings
from clinic.tasks import HEARTBEAT_KEY, heartbeat

ROOT = Path(__file__).resolve().parent.parent


def run_django(env_overrides: dict[str, str], code: str = "import django; django.setup()"):
    """Start Django in a fresh interpreter with the given environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CLINIC_", "DATABASE_", "REDIS_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "clinic.settings"} | env_overrides
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


PRODUCTION = {
    "DJANGO_SECRET_KEY": "x" * 50,
    "CLINIC_FIELD_ENCRYPTION_KEYS": "nTdG-_DMr-yw456XuZhIjy5BwR-tSiOhAyrq9UaGnR4=",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/clinic",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
}


# --- Settings ------------------------------------------------------------------------


@pytest.mark.slow
def test_production_settings_load_from_the_environment():
    result = run_django(
        PRODUCTION, "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_start_without_its_secrets_and_services(missing):
    result = run_django({k: v for k, v in PRODUCTION.items() if k != missing})
    assert result.returncode != 0
    assert missing in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "value"),
    [("CLINIC_BOOSTER_LEAD_DAYS", "a week"), ("DJANGO_DEBUG", "perhaps"), ("CLINIC_CLOSED_WEEKDAYS", "sat,sun")],
)
def test_a_malformed_setting_stops_the_process(name, value):
    result = run_django(PRODUCTION | {name: value})
    assert result.returncode != 0
    assert "Error" in result.stderr


@pytest.mark.slow
def test_without_services_development_runs_embedded(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"
    )
    result = run_django({"DJANGO_DEBUG": "true", "CLINIC_VAR_DIR": str(tmp_path)}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


@pytest.mark.slow
def test_with_database_and_redis_urls_development_uses_them(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"
    )
    env = {"DJANGO_DEBUG": "true", "CLINIC_VAR_DIR": str(tmp_path)} | PRODUCTION
    result = run_django(env, code)
    assert result.stdout.split() == ["django.db.backends.postgresql", PRODUCTION["REDIS_URL"]]


@pytest.mark.parametrize(
    ("setting", "value", "check_id"),
    [
        ("CLINIC_CLOSED_WEEKDAYS", [5, 7], "clinic.E001"),
        ("CLINIC_CLOSED_WEEKDAYS", [0, 1, 2, 3, 4, 5], "clinic.E002"),
        ("CLINIC_DEFAULT_APPOINTMENT_TIME", "9am", "clinic.E003"),
        ("CLINIC_BOOSTER_LEAD_DAYS", -1, "clinic.E004"),
    ],
)
def test_system_checks_catch_impossible_clinic_settings(settings, setting, value, check_id):
    setattr(settings, setting, value)
    assert check_id in [error.id for error in check_clinic_settings(None)]


def test_the_default_clinic_settings_pass_the_checks():
    assert check_clinic_settings(None) == []


# --- Structure ----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_has_no_model_changes_without_a_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_the_sessions_package_coexists_with_django_sessions():
    assert apps.get_app_config("infusions").name == "sessions"
    assert apps.get_app_config("sessions").name == "django.contrib.sessions"


def test_records_in_urls_have_opaque_ids():
    for label in ("patients", "infusions", "maintenance"):
        for model in apps.get_app_config(label).get_models():
            if model._meta.proxy or model.__name__ == "JobRun":  # named by the job, not patient data
                continue
            assert model._meta.pk.get_internal_type() == "UUIDField", model


# --- Health ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_reports_a_live_worker(client):
    cache.set(HEARTBEAT_KEY, timezone.now().isoformat())
    body = client.get("/health/").json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["worker"] == "ok"


@pytest.mark.django_db
def test_health_reports_a_stale_worker(client):
    cache.set(HEARTBEAT_KEY, (timezone.now() - dt.timedelta(minutes=10)).isoformat())
    assert client.get("/health/").json()["worker"] == "stale"


# --- Celery ------------------------------------------------------------------------------


def test_celery_is_configured_for_reliable_delivery():
    from clinic.celery import app

    assert app.conf.broker_url.startswith("redis://")
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert "worker-heartbeat" in app.conf.beat_schedule


@pytest.mark.slow
@pytest.mark.django_db
def test_a_real_worker_process_runs_a_task_sent_through_redis():
    from django.db import connection

    from clinic.celery import app

    # Start from an empty queue: other tests' on-commit nudges may be waiting in it.
    app.control.purge()
    cache.delete(HEARTBEAT_KEY)
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="clinic.test_settings", DATABASE_URL=database_url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "clinic", "worker", "--pool=solo", "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        heartbeat.delay()
        deadline = time.monotonic() + 30
        while cache.get(HEARTBEAT_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cache.get(HEARTBEAT_KEY) is not None, "the worker did not run the task"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
