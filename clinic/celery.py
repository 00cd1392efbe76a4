"""The Celery application, configured from Django settings (``CELERY_`` namespace)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

app = Celery("clinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Exactly one beat process runs this schedule (docker-compose's ``beat`` service,
# or the ``beat`` line of the development Procfile).
app.conf.beat_schedule = {
    "worker-heartbeat": {"task": "clinic.tasks.heartbeat", "schedule": 60.0},
    # Reminders: find what is due, then deliver it (maintenance/reminders.py).
    "reminder-scan": {"task": "maintenance.tasks.scan", "schedule": 60.0},
    "reminder-dispatch": {"task": "maintenance.tasks.dispatch", "schedule": 60.0},
    "purge-expired-api-tokens": {"task": "clinic.tasks.purge_expired_api_tokens", "schedule": 3600.0},
}
