"""Project-level views: the role-based home page and the health endpoint."""

from __future__ import annotations

import datetime as dt
import logging

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clinic.tasks import HEARTBEAT_KEY
from patients import access

#: A worker that has not beaten for this long is reported stale (beat runs every minute).
HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=5)


@login_required
def home(request):
    """Each role starts where its work is."""
    user = request.user
    if access.is_clinician(user):
        return redirect("infusions:today")
    if access.is_staff_member(user):
        return redirect("maintenance:board")
    if access.has_role(user, access.Role.PATIENT):
        return redirect("portal:home")
    if access.is_auditor(user):
        return redirect("audit:search")
    raise PermissionDenied("This account has no role in the clinic yet.")


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
    if checks["database"] == "ok":
        from maintenance.reminders import reminder_health

        reminders = reminder_health()
        checks["reminder_scan"] = "stale" if reminders.stale else "ok"
        checks["reminder_scan_last_success"] = reminders.last_scan_at.isoformat() if reminders.last_scan_at else None
        checks["reminders_pending"] = reminders.pending
        checks["reminders_failed"] = reminders.failed
    healthy = checks["database"] == "ok"
    return JsonResponse({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)


access_log = logging.getLogger("clinic.access")


def permission_denied(request, exception=None):
    """Every refusal is logged (who, what path, from where: paths carry only opaque ids)."""
    user = request.user
    access_log.warning(
        "access refused: user=%s roles=%s method=%s path=%s address=%s",
        user.pk if user.is_authenticated else "anonymous",
        ",".join(sorted(access.user_roles(user))) or "-",
        request.method,
        request.path,
        request.META.get("REMOTE_ADDR", "-"),
    )
    if _is_api(request):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return render(request, "403.html", status=403)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request, exception=None):
    """An API client gets JSON, as from every other API answer; a browser the page."""
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"detail": "Server error: the clinic's staff have been told."}, status=500)
    return defaults.server_error(request)


def locked_out(request, original_response=None, credentials=None):
    """What django-axes answers during a lockout: the same for every username, existing
    or not, and for the API as JSON (429, as for any throttle)."""
    from django.conf import settings

    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    message = f"Too many failed attempts: logging in is paused for {minutes} minutes."
    if _is_api(request):
        return JsonResponse({"detail": message}, status=429)
    return render(request, "registration/locked_out.html", {"cooloff_minutes": minutes}, status=429)
