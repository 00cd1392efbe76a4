"""Write workflows for maintenance plans and booster appointments."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from clinic.db import validate_and_save
from maintenance.models import BoosterAppointment, MaintenancePlan
from maintenance.selectors import last_completed_infusion
from patients import access
from patients.models import Patient
from sessions.models import SessionKind
from sessions.scheduling import clinic_date
from sessions.services import check_infusion_day, planned_dose

PLAN_FIELDS = (
    "protocol",
    "target_interval_days",
    "min_interval_days",
    "max_interval_days",
    "trigger_phq9_threshold",
    "trigger_phq9_rise",
    "is_active",
    "notes",
)


@transaction.atomic
def maintenance_plan_save(*, patient: Patient, by, **fields: Any) -> MaintenancePlan:
    """Create or change the patient's maintenance plan (intervals in days)."""
    if not access.can_change_patient(by, patient):
        raise PermissionDenied("Only clinic staff can change a maintenance plan.")
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown plan fields: {', '.join(sorted(unknown))}.")
    try:
        plan = MaintenancePlan.objects.select_for_update().get(patient=patient)
    except MaintenancePlan.DoesNotExist:
        plan = MaintenancePlan(patient=patient)
    protocol = fields.get("protocol")
    if protocol is not None and protocol.pk != plan.protocol_id and not protocol.is_active:
        # A plan may keep a protocol retired since, but not take one up.
        raise ValidationError({"protocol": "This protocol is no longer in use."})
    for name, value in fields.items():
        setattr(plan, name, value)
    validate_and_save(plan)
    return plan


def booster_check(*, patient: Patient, scheduled_at: dt.datetime, allow_past: bool = False) -> MaintenancePlan:
    """Refuse a booster that cannot be booked; returns the plan it follows."""
    try:
        plan = patient.maintenance_plan
    except MaintenancePlan.DoesNotExist:
        raise ValidationError({"patient": "This patient has no maintenance plan yet; create one first."}) from None
    if not plan.is_in_force:
        raise ValidationError({"patient": "This patient's maintenance plan is paused, or the patient is not active."})
    if timezone.is_naive(scheduled_at):
        raise ValidationError({"scheduled_at": "Give the booster time with its time zone."})
    day = clinic_date(scheduled_at)
    if not allow_past and day < timezone.localdate():
        raise ValidationError({"scheduled_at": "A booster cannot be booked in the past."})
    booster_day_check(patient=patient, plan=plan, day=day)
    check_infusion_day(patient=patient, day=day, allow_past=allow_past)
    return plan


def booster_day_check(*, patient: Patient, plan: MaintenancePlan, day: dt.date) -> None:
    """The booster rules for a day (booking or moving): no induction series in progress,
    and not before the plan's minimum interval after the last infusion."""
    if any(series.is_in_progress for series in patient.series.with_progress()):
        raise ValidationError({"patient": "This patient's induction series is still in progress."})
    last = last_completed_infusion(patient)
    if last is not None and plan.min_interval_days:
        earliest = last.scheduled_on + dt.timedelta(days=plan.min_interval_days)
        if day < earliest:
            raise ValidationError(
                {
                    "scheduled_at": f"The plan's minimum interval is {plan.min_interval_days} days after the last "
                    f"infusion ({last.scheduled_on:%d %B}): the earliest booster date is {earliest:%A %d %B %Y}."
                }
            )


@transaction.atomic
def booster_schedule(
    *, patient: Patient, scheduled_at: dt.datetime, by, allow_past: bool = False
) -> BoosterAppointment:
    """Book a booster infusion with the route and dose of the patient's plan.

    ``allow_past`` is for entering boosters that already happened (the demo clinic).
    """
    if not access.can_change_patient(by, patient):
        raise PermissionDenied("Only clinic staff can schedule boosters.")
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    plan = booster_check(patient=patient, scheduled_at=scheduled_at, allow_past=allow_past)
    protocol = plan.protocol
    booster = BoosterAppointment(
        patient=patient,
        kind=SessionKind.BOOSTER,
        scheduled_at=scheduled_at,
        route=protocol.route,
        drug=protocol.drug,
        planned_minutes=protocol.duration_minutes,
        **planned_dose(protocol),
    )
    validate_and_save(booster)
    return booster
