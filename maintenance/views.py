"""Scheduler pages: the booster board, booking a booster, the maintenance plan, the inbox.

Views only fetch (maintenance.selectors) and call the services; every rule lives there.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from clinic.decorators import staff_required
from clinic.forms import add_service_errors
from maintenance.forms import BoosterForm, PlanForm, weeks
from maintenance.models import BoosterStage, MaintenancePlan, Notification
from maintenance.reminders import reminder_health
from maintenance.selectors import (
    BoardRow,
    booster_board,
    booster_status,
    last_completed_infusion,
    suggest_booster_day,
)
from maintenance.services import booster_schedule, maintenance_plan_save
from patients import access
from patients.models import Patient
from sessions.models import SessionKind, SessionStatus

INBOX_PAGE_SIZE = 25


def safe_path(request, target: str | None) -> str | None:
    """``target`` if it is a path inside this site (never another host), else None."""
    if not target or not target.startswith("/"):
        return None
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return None
    return target


def next_url(request, default: str) -> str:
    """Where to go back to: a safe ``next`` from the form or the query, else ``default``."""
    return safe_path(request, request.POST.get("next") or request.GET.get("next")) or default


def _patient(request, pk) -> Patient:
    patient = get_object_or_404(Patient, pk=pk)
    if not access.can_change_patient(request.user, patient):
        raise PermissionDenied
    return patient


def days_text(days: int) -> str:
    """Days from today to a date: "today", "in 3 days", "5 days ago"."""
    if days == 0:
        return "today"
    count = f"{abs(days)} day{'s' if abs(days) != 1 else ''}"
    return f"in {count}" if days > 0 else f"{count} ago"


def interval_target(plan: MaintenancePlan) -> str:
    return f"every {plan.target_interval_days} days ({weeks(plan.target_interval_days)})"


def interval_bounds(plan: MaintenancePlan) -> str:
    """The plan's minimum and maximum: "min 14, max 42 days", or "" when it has neither."""
    bounds = [
        f"{label} {value}"
        for label, value in (("min", plan.min_interval_days), ("max", plan.max_interval_days))
        if value is not None
    ]
    return f"{', '.join(bounds)} days" if bounds else ""


def interval_text(plan: MaintenancePlan) -> str:
    """The plan's interval: "every 28 days (4 weeks), min 14, max 42 days"."""
    bounds = interval_bounds(plan)
    return f"{interval_target(plan)}, {bounds}" if bounds else interval_target(plan)


def _board_item(row: BoardRow) -> dict:
    status = row.status
    return {
        "row": row,
        "patient": row.patient,
        "status": status,
        "due_text": days_text(status.due.days_until_due),
        "interval": interval_target(status.plan),
        "bounds": interval_bounds(status.plan),
        # red only while nothing is booked: a booked booster is in hand
        "is_alert": status.due.stage == BoosterStage.OVERDUE and status.next_appointment is None,
    }


@staff_required
def board(request):
    """Every patient's next booster, most urgent first, with what to do about it."""
    today = timezone.localdate()
    data = booster_board(today=today)
    stage = request.GET.get("stage", "")
    if stage not in BoosterStage.values:
        stage = ""
    sections = [
        {
            "stage": stage_value,
            "label": stage_value.label,
            "items": [_board_item(row) for row in rows],
        }
        for stage_value, rows in data.by_stage()
    ]
    counts = {section["stage"]: len(section["items"]) for section in sections}
    filters = [{"value": "", "label": "All", "count": len(data.rows), "current": stage == ""}] + [
        {
            "value": section["stage"].value,
            "label": section["label"],
            "count": counts[section["stage"]],
            "current": stage == section["stage"],
        }
        for section in sections
    ]
    if stage:
        sections = [section for section in sections if section["stage"] == stage]
    return render(
        request,
        "maintenance/board.html",
        {
            "nav": "boosters",
            "board": data,
            "today": today,
            "sections": sections,
            "filters": filters,
            "stage": stage,
            "here": request.get_full_path(),
            "reminders": reminder_health(),
        },
    )


@staff_required
def booster_new(request, pk):
    """Book a patient's next booster (the services check the plan, the day and the spacing)."""
    patient = _patient(request, pk)
    today = timezone.localdate()
    status = booster_status(patient=patient, today=today)
    suggested = suggest_booster_day(due_on=status.due.due_on if status else today, today=today)
    back = next_url(request, reverse("maintenance:board"))
    form = BoosterForm(request.POST or None, suggested=suggested)
    if request.method == "POST" and form.is_valid():
        try:
            booster = booster_schedule(patient=patient, scheduled_at=form.scheduled_at(), by=request.user)
        except ValidationError as error:
            add_service_errors(form, error, form.SERVICE_ALIASES)
        else:
            when = timezone.localtime(booster.scheduled_at)
            messages.success(request, f"Booster booked for {patient.full_name} on {when:%A %d %B %Y at %H:%M}.")
            return redirect(back)
    try:
        plan = patient.maintenance_plan
    except MaintenancePlan.DoesNotExist:
        plan = None
    booked = patient.infusion_sessions.filter(
        kind=SessionKind.BOOSTER, status=SessionStatus.SCHEDULED, scheduled_on__gte=today
    ).order_by("scheduled_at")
    last = status.last_infusion if status else last_completed_infusion(patient)
    earliest = None
    if plan and plan.min_interval_days and last:
        earliest = last.scheduled_on + dt.timedelta(days=plan.min_interval_days)
    return render(
        request,
        "maintenance/booster_form.html",
        {
            "nav": "boosters",
            "patient": patient,
            "plan": plan,
            "interval": interval_text(plan) if plan else "",
            "status": status,
            "due_text": days_text(status.due.days_until_due) if status else "",
            "last": last,
            "earliest": earliest,
            "booked": list(booked),
            "in_progress": any(series.is_in_progress for series in patient.series.with_progress()),
            "form": form,
            "next": back,
            "back": back,
        },
    )


@staff_required
def plan_edit(request, pk):
    """Create or change a patient's maintenance plan."""
    patient = _patient(request, pk)
    plan = MaintenancePlan.objects.filter(patient=patient).select_related("protocol").first()
    initial = {}
    if plan is None:
        # boosters usually repeat the induction's route and dose
        latest = patient.series.filter(protocol__is_active=True).order_by("-start_date").first()
        initial["protocol"] = latest.protocol_id if latest else None
    form = PlanForm(request.POST or None, instance=plan or MaintenancePlan(patient=patient), initial=initial)
    back = next_url(request, patient.get_absolute_url())
    if request.method == "POST" and form.is_valid():
        try:
            maintenance_plan_save(patient=patient, by=request.user, **form.plan_fields())
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            verb = "updated" if plan else "created"
            messages.success(request, f"Maintenance plan {verb} for {patient.full_name}.")
            return redirect(back)
    return render(
        request,
        "maintenance/plan_form.html",
        {
            "nav": "boosters",
            "patient": patient,
            "plan": plan,
            "form": form,
            "last": last_completed_infusion(patient),
            "next": back,
            "back": back,
        },
    )


@staff_required
def inbox(request):
    """The user's own notifications, newest first."""
    show = "unread" if request.GET.get("show") == "unread" else "all"
    notifications = Notification.objects.filter(recipient=request.user).select_related("patient")
    if show == "unread":
        notifications = notifications.unread()
    page = Paginator(notifications.order_by("-created_at", "-pk"), INBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    items = [{"notification": item, "link": safe_path(request, item.link)} for item in page]
    return render(
        request,
        "maintenance/inbox.html",
        {
            "nav": "inbox",
            "page": page,
            "items": items,
            "show": show,
            "here": request.get_full_path(),
            "unread_total": Notification.objects.filter(recipient=request.user).unread().count(),
        },
    )


def _mark_read(notifications) -> int:
    now = timezone.now()
    return notifications.filter(read_at__isnull=True).update(read_at=now, updated_at=now)


@staff_required
@require_POST
def notification_read(request, pk):
    """Mark one of the user's notifications read, then follow its link (or go back)."""
    notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
    _mark_read(Notification.objects.filter(pk=notification.pk))
    inbox_url = reverse("maintenance:inbox")
    if request.POST.get("next"):
        return redirect(next_url(request, inbox_url))
    return redirect(safe_path(request, notification.link) or inbox_url)


@staff_required
@require_POST
def read_all(request):
    count = _mark_read(Notification.objects.filter(recipient=request.user))
    if count:
        messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} as read.")
    return redirect(next_url(request, reverse("maintenance:inbox")))
