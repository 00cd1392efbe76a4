"""Celery tasks of the reminder system: thin wrappers around maintenance.reminders.

Both run every minute from beat (clinic/celery.py). Late acknowledgement and
reject-on-worker-lost (settings) mean a task whose worker dies is delivered again; the
work itself is idempotent, so running twice is harmless.
"""

from celery import shared_task
from django.db import DatabaseError

from maintenance import reminders


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, retry_backoff_max=300, max_retries=5)
def scan() -> int:
    created = reminders.scan_reminders()
    if created:
        reminders.nudge_dispatcher()
    return created


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, retry_backoff_max=300, max_retries=5)
def dispatch() -> int:
    return reminders.dispatch_reminders()
