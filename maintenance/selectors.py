"""Reads about a patient's maintenance: the last infusion, triggers and booster status."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from maintenance.models import BoosterDue, MaintenancePlan
from patients.models import Patient, PHQ9Assessment
from sessions.models import InfusionSession, SessionKind, SessionStatus
from sessions.scheduling import clinic_date, clinic_datetime


@dataclass(frozen=True)
class SymptomTrigger:
    assessment: PHQ9Assessment
    reason: str


@dataclass(frozen=True)
class BoosterStatus:
    plan: MaintenancePlan
    last_infusion: InfusionSession
    due: BoosterDue
    trigger: SymptomTrigger | None
    next_appointment: InfusionSession | None


def last_completed_infusion(patient: Patient) -> InfusionSession | None:
    """The patient's most recent completed infusion, induction or booster."""
    return (
        patient.infusion_sessions.filter(status=SessionStatus.COMPLETED)
        .order_by("-scheduled_on", "-scheduled_at")
        .first()
    )


def induction_end(patient: Patient) -> InfusionSession | None:
    """The last completed infusion of the patient's latest complete induction series."""
    for series in patient.series.with_progress().order_by("-start_date"):
        if series.is_complete:
            return series.sessions.filter(status=SessionStatus.COMPLETED).order_by("-scheduled_at").first()
    return None


def symptom_trigger(*, plan: MaintenancePlan, since: InfusionSession) -> SymptomTrigger | None:
    """The first PHQ-9 after ``since`` that meets the plan's triggers, if any.

    A rise is measured over the lowest total after the end of induction.
    """
    patient = plan.patient
    end = induction_end(patient)
    scores = patient.phq9_assessments.order_by("taken_at")
    if end is not None:
        # From the start of the last induction visit's day: its pre-infusion PHQ-9 is the
        # first score of the post-induction period.
        scores = scores.filter(taken_at__gte=clinic_datetime(end.scheduled_on, dt.time.min))
    low: int | None = None
    cutoff = since.ended_at or since.scheduled_at
    for assessment in scores:
        if assessment.taken_at > cutoff:
            reason = plan.trigger_reason(total=assessment.total, post_induction_low=low if end else None)
            if reason:
                return SymptomTrigger(assessment, reason)
        low = assessment.total if low is None else min(low, assessment.total)
    return None


def booster_status(*, patient: Patient, today: dt.date | None = None) -> BoosterStatus | None:
    """Where the patient's next booster stands, or None when boosters do not apply yet.

    Boosters apply once the patient has an active maintenance plan, no induction
    series in progress, and at least one completed infusion.
    """
    try:
        plan = patient.maintenance_plan
    except MaintenancePlan.DoesNotExist:
        return None
    if not plan.is_active:
        return None
    if any(series.is_in_progress for series in patient.series.with_progress()):
        return None
    last = last_completed_infusion(patient)
    if last is None:
        return None
    today = today or timezone.localdate()
    trigger = symptom_trigger(plan=plan, since=last)
    due = plan.due_status(
        last_infusion_on=last.scheduled_on,
        today=today,
        triggered_on=clinic_date(trigger.assessment.taken_at) if trigger else None,
    )
    upcoming = (
        patient.infusion_sessions.filter(
            kind=SessionKind.BOOSTER, status=SessionStatus.SCHEDULED, scheduled_on__gte=today
        )
        .order_by("scheduled_at")
        .first()
    )
    return BoosterStatus(plan=plan, last_infusion=last, due=due, trigger=trigger, next_appointment=upcoming)
