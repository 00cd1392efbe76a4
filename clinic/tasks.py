"""Housekeeping tasks of the clinic project itself."""

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "clinic:worker-heartbeat"


@shared_task
def heartbeat() -> str:
    """Record that a worker is consuming the queue (read by the health endpoint)."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, now, timeout=None)
    return now


@shared_task
def purge_expired_api_tokens() -> int:
    """Delete API tokens past their expiry (they no longer work; this only tidies up)."""
    from knox.models import AuthToken

    deleted, _ = AuthToken.objects.filter(expiry__lt=timezone.now()).delete()
    return deleted
