"""Project-level views: the health endpoint."""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clinic.tasks import HEARTBEAT_KEY

#: A worker that has not beaten for this long is reported stale (beat runs every minute).
HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=5)


@never_cache
@require_GET
def health(request):
    """Liveness of the database, the cache/broker and the Celery worker (no patient data)."""
    checks: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "down"
    try:
        last = cache.get(HEARTBEAT_KEY)
        checks["cache"] = "ok"
    except Exception:
        last = None
        checks["cache"] = "down"
    if last:
        age = timezone.now() - dt.datetime.fromisoformat(last)
        checks["worker_last_seen"] = last
        checks["worker"] = "ok" if age <= HEARTBEAT_STALE_AFTER else "stale"
    else:
        checks["worker"] = "unknown"
    healthy = checks["database"] == "ok"
    return JsonResponse({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)
