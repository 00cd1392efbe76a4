"""Workflows for induction series and infusion sessions.

Every write to a series or session goes through here (forms, API, admin, seed data),
so the scheduling, dosing and locking rules cannot be bypassed. Each function raises
``ValidationError`` with a clear message and leaves the database untouched on bad input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from clinic.db import validate_and_save
from patients import access
from patients.models import Patient, PatientStatus
from patients.services import parse_weight_kg, patient_record_weight
from sessions.dosing import weight_based_dose_mg
from sessions.models import (
    OCCUPYING_STATUSES,
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    Protocol,
    SessionKind,
    SessionLocked,
    SessionStatus,
    SideEffect,
    VitalSignReading,
)
from sessions.scheduling import (
    PLANNING_HORIZON_DAYS,
    Gap,
    clinic_date,
    clinic_datetime,
    closed_dates_between,
    default_appointment_time,
    is_open_day,
    plan_series_dates,
    series_gaps,
)

LOCKED_MESSAGE = "This infusion record is signed and locked; record a correction as an amendment."


def _require_scheduling(user, patient: Patient) -> None:
    if user is None or not access.can_change_patient(user, patient):
        raise PermissionDenied("Only clinic staff can schedule infusions.")


def _require_clinician(user, patient: Patient) -> None:
    if not access.can_record_clinical(user, patient):
        raise PermissionDenied("Only a clinician can record clinical data.")


def _patient_unavailable_days(
    patient: Patient, start: dt.date, end: dt.date, *, exclude: InfusionSession | None = None
) -> Callable[[dt.date], bool]:
    """A predicate: is ``day`` closed, or already taken by another infusion of the patient?"""
    closed = closed_dates_between(start, end)
    booked = patient.infusion_sessions.filter(status__in=OCCUPYING_STATUSES, scheduled_on__range=(start, end))
    if exclude is not None:
        booked = booked.exclude(pk=exclude.pk)
    busy = set(booked.values_list("scheduled_on", flat=True))
    return lambda day: not is_open_day(day, closed) or day in busy


# --- Series ---------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPlan:
    dates: list[dt.date]
    gaps: list[Gap]


def series_plan(*, patient: Patient, protocol: Protocol, start_date: dt.date) -> SeriesPlan:
    """Preview the dates a new series would take (nothing is saved)."""
    end = start_date + dt.timedelta(days=PLANNING_HORIZON_DAYS)
    dates = plan_series_dates(
        start=start_date,
        count=protocol.infusion_count,
        per_week=protocol.infusions_per_week,
        unavailable=_patient_unavailable_days(patient, start_date, end),
    )
    return SeriesPlan(dates=dates, gaps=series_gaps(dates))


def planned_dose(protocol: Protocol) -> dict[str, Any]:
    if protocol.is_weight_based:
        return {"dose_mg_per_kg": protocol.dose, "dose_mg": None}
    return {"dose_mg_per_kg": None, "dose_mg": protocol.dose}


def series_check(*, patient: Patient, protocol: Protocol, start_date: dt.date, allow_past: bool = False) -> None:
    """Refuse a series that cannot start: inactive protocol, discharged patient, a start
    in the past, or another series of the patient still in progress."""
    errors: dict[str, str] = {}
    if not protocol.is_active:
        errors["protocol"] = "This protocol is no longer in use."
    if patient.status == PatientStatus.DISCHARGED:
        errors["patient"] = "This patient has been discharged; re-activate them before starting a series."
    if not allow_past and start_date < timezone.localdate():
        errors["start_date"] = "A new series cannot start in the past."
    in_progress = [s for s in patient.series.with_progress() if s.is_in_progress]
    if in_progress:
        errors["patient"] = (
            f"This patient's series from {in_progress[0].start_date:%d %b %Y} is still in progress; "
            "complete or discontinue it first."
        )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def series_create(
    *,
    patient: Patient,
    protocol: Protocol,
    start_date: dt.date,
    created_by,
    appointment_time: dt.time | None = None,
    allow_past: bool = False,
    expected_dates: list[dt.date] | None = None,
) -> InductionSeries:
    """Start an induction series: one scheduled session per planned infusion.

    ``allow_past`` is for entering a series that already happened (records brought
    from paper, the demo clinic); staff screens never set it. Gaps over the allowed
    maximum are reported by ``series_gap_report`` (and shown by ``series_plan`` first).
    """
    _require_scheduling(created_by, patient)
    # Serialise series creation per patient, so two clicks cannot start two series.
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    series_check(patient=patient, protocol=protocol, start_date=start_date, allow_past=allow_past)

    plan = series_plan(patient=patient, protocol=protocol, start_date=start_date)
    if expected_dates is not None and plan.dates != list(expected_dates):
        # Another booking changed the calendar since the preview: book nothing unseen.
        raise ValidationError("The available dates changed since the preview; check the new dates, then confirm.")
    at = appointment_time or default_appointment_time()
    series = InductionSeries.objects.create(
        patient=patient,
        protocol=protocol,
        planned_infusions=protocol.infusion_count,
        infusions_per_week=protocol.infusions_per_week,
        start_date=plan.dates[0],
        created_by=created_by,
    )
    dose = planned_dose(protocol)
    for day in plan.dates:
        InfusionSession.objects.create(
            patient=patient,
            series=series,
            kind=SessionKind.INDUCTION,
            scheduled_at=clinic_datetime(day, at),
            route=protocol.route,
            drug=protocol.drug,
            planned_minutes=protocol.duration_minutes,
            **dose,
        )
    if patient.status == PatientStatus.INTAKE:
        patient.status = PatientStatus.ACTIVE
        patient.save(update_fields=["status", "updated_at"])
    return series


def series_gap_report(series: InductionSeries) -> list[Gap]:
    """Gaps over the allowed maximum between the series' remaining and given infusions."""
    days = series.sessions.filter(status__in=OCCUPYING_STATUSES).values_list("scheduled_on", flat=True)
    return series_gaps(days)


@transaction.atomic
def series_discontinue(*, series: InductionSeries, by, reason: str) -> InductionSeries:
    """Stop a series early; its remaining scheduled sessions are cancelled."""
    _require_scheduling(by, series.patient)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"discontinued_reason": "Say why the series is stopped."})
    series = InductionSeries.objects.select_for_update().get(pk=series.pk)
    if series.discontinued_at is not None:
        raise ValidationError("This series has already been discontinued.")
    if series.sessions.filter(status=SessionStatus.SCHEDULED, started_at__isnull=False).exists():
        raise ValidationError("An infusion of this series is under way; complete it before stopping the series.")
    series.discontinued_at = timezone.now()
    series.discontinued_reason = reason
    series.save(update_fields=["discontinued_at", "discontinued_reason", "updated_at"])
    series.sessions.filter(status=SessionStatus.SCHEDULED).update(
        status=SessionStatus.CANCELLED, status_reason="Series discontinued", updated_at=timezone.now()
    )
    return series


# --- Appointments ---------------------------------------------------------------


def check_infusion_day(
    *, patient: Patient, day: dt.date, exclude: InfusionSession | None = None, allow_past: bool = False
) -> None:
    """Refuse a day in the past, a day the clinic is closed, or a day on or next to
    another infusion of the patient (infusions never fall on consecutive days)."""
    if not allow_past and day < timezone.localdate():
        raise ValidationError({"scheduled_at": "An infusion cannot be booked in the past."})
    if not is_open_day(day, closed_dates_between(day, day)):
        raise ValidationError({"scheduled_at": f"The clinic is closed on {day:%A %d %B %Y}."})
    near = patient.infusion_sessions.filter(
        status__in=OCCUPYING_STATUSES,
        scheduled_on__range=(day - dt.timedelta(days=1), day + dt.timedelta(days=1)),
    )
    if exclude is not None:
        near = near.exclude(pk=exclude.pk)
    for other in near:
        if other.scheduled_on == day:
            raise ValidationError({"scheduled_at": f"{patient.full_name} already has an infusion on {day:%d %B %Y}."})
        raise ValidationError(
            {
                "scheduled_at": f"{patient.full_name} has an infusion on {other.scheduled_on:%A %d %B}; "
                "infusions are not given on consecutive days."
            }
        )


@transaction.atomic
def session_reschedule(*, session: InfusionSession, scheduled_at: dt.datetime, by) -> list[Gap]:
    """Move one scheduled session; the others stay where they are.

    Returns the series' gaps over the allowed maximum after the move (to report).
    """
    _require_scheduling(by, session.patient)
    session = InfusionSession.objects.select_for_update().get(pk=session.pk)
    if session.status != SessionStatus.SCHEDULED or session.started_at is not None:
        state = "under way" if session.started_at else session.get_status_display().lower()
        raise ValidationError(f"Only an infusion that has not started can be moved; this one is {state}.")
    if timezone.is_naive(scheduled_at):
        raise ValidationError({"scheduled_at": "Give the new time with its time zone."})
    if session.kind == SessionKind.BOOSTER:
        # A moved booster keeps to the booster rules (minimum interval, plan in force).
        from maintenance.models import MaintenancePlan
        from maintenance.services import booster_day_check

        plan = MaintenancePlan.objects.filter(patient=session.patient).first()
        if plan is None or not plan.is_in_force:
            raise ValidationError("This patient's maintenance plan is paused or missing; boosters cannot be moved.")
        booster_day_check(patient=session.patient, plan=plan, day=clinic_date(scheduled_at))
    check_infusion_day(patient=session.patient, day=clinic_date(scheduled_at), exclude=session)
    session.scheduled_at = scheduled_at
    validate_and_save(session, update_fields=["scheduled_at", "scheduled_on", "updated_at"])
    return series_gap_report(session.series) if session.series_id else []


@transaction.atomic
def session_cancel(*, session: InfusionSession, by, reason: str = "") -> InfusionSession:
    return _close_unstarted(session=session, by=by, status=SessionStatus.CANCELLED, reason=reason)


@transaction.atomic
def session_mark_missed(*, session: InfusionSession, by, reason: str = "") -> InfusionSession:
    """The patient did not come. The series still needs the infusion: book a make-up."""
    if session.scheduled_on > timezone.localdate():
        raise ValidationError("An appointment that has not come yet cannot be missed; cancel it instead.")
    return _close_unstarted(session=session, by=by, status=SessionStatus.MISSED, reason=reason)


def _close_unstarted(*, session: InfusionSession, by, status: str, reason: str) -> InfusionSession:
    _require_scheduling(by, session.patient)
    session = InfusionSession.objects.select_for_update().get(pk=session.pk)
    if session.status != SessionStatus.SCHEDULED or session.started_at is not None:
        raise ValidationError("Only an infusion that has not started can be cancelled or marked missed.")
    session.status = status
    session.status_reason = (reason or "").strip()[:200]
    session.save(update_fields=["status", "status_reason", "updated_at"])
    return session


@transaction.atomic
def series_schedule_makeup(
    *, series: InductionSeries, scheduled_at: dt.datetime, by, allow_past: bool = False
) -> InfusionSession:
    """Book an extra infusion in a series (after a missed or cancelled one)."""
    _require_scheduling(by, series.patient)
    # Lock the series so two make-ups booked at once cannot exceed the planned count.
    series = InductionSeries.objects.select_for_update().get(pk=series.pk)
    if timezone.is_naive(scheduled_at):
        raise ValidationError({"scheduled_at": "Give the time with its time zone."})
    if not series.is_in_progress:
        raise ValidationError("This series is complete or discontinued.")
    remaining = series.sessions.filter(status__in=OCCUPYING_STATUSES).count()
    if remaining >= series.planned_infusions:
        raise ValidationError("Every planned infusion of this series is already booked.")
    check_infusion_day(patient=series.patient, day=clinic_date(scheduled_at), allow_past=allow_past)
    protocol = series.protocol
    session = InfusionSession(
        patient=series.patient,
        series=series,
        kind=SessionKind.INDUCTION,
        scheduled_at=scheduled_at,
        route=protocol.route,
        drug=protocol.drug,
        planned_minutes=protocol.duration_minutes,
        **planned_dose(protocol),
    )
    validate_and_save(session)
    return session


# --- Logging an infusion --------------------------------------------------------

#: Clocks on ward computers drift; a time this far ahead still counts as now.
CLOCK_SKEW = dt.timedelta(minutes=5)


def _not_in_future(moment: dt.datetime | None, field: str, message: str) -> dt.datetime:
    now = timezone.now()
    if moment is None:
        return now
    if moment > now + CLOCK_SKEW:
        raise ValidationError({field: message})
    return moment


def _locked_for_update(session: InfusionSession) -> InfusionSession:
    session = InfusionSession.objects.select_for_update().select_related("patient").get(pk=session.pk)
    if session.is_signed:
        raise SessionLocked(LOCKED_MESSAGE)
    return session


@transaction.atomic
def session_start(
    *, session: InfusionSession, by, weight_kg: Decimal | str | None = None, started_at: dt.datetime | None = None
) -> InfusionSession:
    """Start an infusion: confirm the weight (kg) and fix the dose (mg = mg/kg x kg)."""
    _require_clinician(by, session.patient)
    session = _locked_for_update(session)
    if session.status != SessionStatus.SCHEDULED or session.started_at is not None:
        raise ValidationError("This infusion has already started or is no longer scheduled.")
    started_at = _not_in_future(started_at, "started_at", "An infusion cannot start in the future.")
    if clinic_date(started_at) != session.scheduled_on:
        raise ValidationError(
            {
                "started_at": f"This infusion is booked for {session.scheduled_on:%A %d %B}; "
                "move it to the day it is given."
            }
        )
    if session.is_weight_based:
        if weight_kg in (None, ""):
            weight_kg = session.patient.weight_kg
        if weight_kg is None:
            raise ValidationError({"weight_kg": "Confirm the patient's weight (kg) to compute the dose."})
        weight = parse_weight_kg(weight_kg)
        if weight != session.patient.weight_kg:
            patient_record_weight(patient=session.patient, weight_kg=weight, recorded_on=clinic_date(started_at))
        session.weight_kg_used = weight
        session.dose_mg = weight_based_dose_mg(mg_per_kg=session.dose_mg_per_kg, weight_kg=weight)
    session.started_at = started_at
    session.administered_by = by
    validate_and_save(session)
    return session


@transaction.atomic
def session_record_vitals(
    *,
    session: InfusionSession,
    by,
    phase: str,
    taken_at: dt.datetime | None = None,
    systolic: int | None = None,
    diastolic: int | None = None,
    heart_rate: int | None = None,
    spo2: int | None = None,
) -> VitalSignReading:
    """Record one timestamped reading; ``reading.alerts()`` says which thresholds it crossed."""
    _require_clinician(by, session.patient)
    session = _locked_for_update(session)
    if session.status in (SessionStatus.CANCELLED, SessionStatus.MISSED):
        raise ValidationError("Vital signs belong to an infusion that took place.")
    taken_at = _not_in_future(taken_at, "taken_at", "A reading cannot be taken in the future.")
    if clinic_date(taken_at) != session.scheduled_on:
        raise ValidationError(
            {"taken_at": f"A reading belongs to the infusion's day ({session.scheduled_on:%A %d %B %Y})."}
        )
    reading = VitalSignReading(
        session=session,
        taken_at=taken_at,
        phase=phase,
        systolic=systolic,
        diastolic=diastolic,
        heart_rate=heart_rate,
        spo2=spo2,
        recorded_by=by,
    )
    validate_and_save(reading)
    alerts = [alert for alert in reading.alerts() if alert.level == "alert"]
    if alerts:
        _raise_vitals_alert(session, alerts)
    return reading


def _raise_vitals_alert(session: InfusionSession, alerts) -> None:
    """A reading past the alert thresholds: tell whoever is giving the infusion and the
    patient's clinician."""
    from maintenance.models import NotificationKind
    from maintenance.notify import clinicians_for, notify

    patient = session.patient
    recipients = clinicians_for(patient)
    if session.administered_by_id and access.is_clinician(session.administered_by):
        recipients.append(session.administered_by)
    notify(
        recipients=recipients,
        kind=NotificationKind.VITALS_ALERT,
        title=f"Vital signs alert: {patient.full_name}",
        body="; ".join(alert.message for alert in alerts) + ".",
        patient=patient,
        link=reverse("infusions:detail", kwargs={"pk": session.pk}),
        subject_id=session.pk,
    )


@transaction.atomic
def session_record_side_effect(*, session: InfusionSession, by, kind: str, severity: str, note: str = "") -> SideEffect:
    _require_clinician(by, session.patient)
    session = _locked_for_update(session)
    if session.status in (SessionStatus.CANCELLED, SessionStatus.MISSED):
        raise ValidationError("Side effects belong to an infusion that took place.")
    effect = SideEffect(session=session, kind=kind, severity=severity, note=(note or "").strip())
    validate_and_save(effect)
    return effect


@transaction.atomic
def session_complete(
    *,
    session: InfusionSession,
    by,
    ended_at: dt.datetime | None = None,
    dissociation_scale: str = "",
    dissociation_score: int | None = None,
    notes: str = "",
) -> InfusionSession:
    """The infusion is over: record when it ended, the dissociation score and notes."""
    _require_clinician(by, session.patient)
    session = _locked_for_update(session)
    if session.status != SessionStatus.SCHEDULED or session.started_at is None:
        raise ValidationError("Start the infusion before completing it.")
    session.ended_at = _not_in_future(ended_at, "ended_at", "An infusion cannot end in the future.")
    session.dissociation_scale = dissociation_scale or ""
    session.dissociation_score = dissociation_score
    if notes:
        session.notes = notes
    session.status = SessionStatus.COMPLETED
    validate_and_save(session)
    return session


@transaction.atomic
def session_discharge(*, session: InfusionSession, by, discharged_at: dt.datetime | None = None) -> InfusionSession:
    """The patient leaves with a responsible adult (no driving until the next day)."""
    _require_clinician(by, session.patient)
    session = _locked_for_update(session)
    if session.status != SessionStatus.COMPLETED:
        raise ValidationError("Complete the infusion before discharging the patient.")
    session.discharged_at = _not_in_future(discharged_at, "discharged_at", "A discharge cannot be in the future.")
    session.discharged_by = by
    validate_and_save(session)
    return session


@transaction.atomic
def session_sign(*, session: InfusionSession, by, signed_at: dt.datetime | None = None) -> InfusionSession:
    """Sign the record; from now on it is locked and changes are amendments.

    ``signed_at`` (default now) is for records entered after the fact, such as paper
    charts; it must fall between the discharge and now.
    """
    _require_clinician(by, session.patient)
    session = _locked_for_update(session)
    if session.status != SessionStatus.COMPLETED or session.discharged_at is None:
        raise ValidationError("Only a completed infusion with its discharge recorded can be signed.")
    now = timezone.now()
    signed_at = signed_at or now
    if not session.discharged_at <= signed_at <= now:
        raise ValidationError({"signed_at": "A record is signed after the discharge and not in the future."})
    InfusionSession.objects.filter(pk=session.pk, signed_at__isnull=True).update(
        signed_at=signed_at, signed_by=by, updated_at=now
    )
    session.refresh_from_db()
    return session


#: Fields a clinician may correct on a signed record, and how to read a new value.
AMENDABLE_FIELDS = (
    "notes",
    "dissociation_scale",
    "dissociation_score",
    "started_at",
    "ended_at",
    "discharged_at",
    "weight_kg_used",
)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()  # with the clinic's offset, as shown everywhere
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _check_amended_times(amended: InfusionSession, changes: Mapping[str, Any]) -> None:
    """Corrected times keep the rules the original ones met: none in the future, the start
    on the booked day, the signature after the discharge (order is checked by constraints)."""
    errors: dict[str, str] = {}
    now = timezone.now() + CLOCK_SKEW
    for field in ("started_at", "ended_at", "discharged_at"):
        value = changes.get(field)
        if value is not None and value > now:
            errors[field] = "A corrected time cannot be in the future."
    if "started_at" in changes and amended.started_at and clinic_date(amended.started_at) != amended.scheduled_on:
        errors["started_at"] = f"The infusion was booked for {amended.scheduled_on:%A %d %B %Y}."
    if amended.discharged_at and amended.signed_at and amended.discharged_at > amended.signed_at:
        errors.setdefault("discharged_at", "The record was signed before this discharge time.")
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def session_amend(*, session: InfusionSession, by, reason: str, changes: Mapping[str, Any]) -> InfusionAmendment:
    """Correct a signed record. The amendment keeps every original value it replaces.

    A corrected weight recomputes the dose from the session's mg/kg.
    """
    _require_clinician(by, session.patient)
    session = InfusionSession.objects.select_for_update().get(pk=session.pk)
    if not session.is_signed:
        raise ValidationError("Only a signed record is amended; edit an unsigned record directly.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Give the reason for the amendment."})
    unknown = set(changes) - set(AMENDABLE_FIELDS)
    if unknown:
        raise ValidationError(f"These fields cannot be amended: {', '.join(sorted(unknown))}.")
    if not changes:
        raise ValidationError("The amendment changes nothing.")

    amended = InfusionSession.objects.get(pk=session.pk)
    for field, value in changes.items():
        setattr(amended, field, value)
    if "weight_kg_used" in changes:
        if not amended.is_weight_based:
            raise ValidationError({"weight_kg_used": "This dose was fixed, not computed from weight."})
        amended.weight_kg_used = parse_weight_kg(changes["weight_kg_used"], field="weight_kg_used")
        amended.dose_mg = weight_based_dose_mg(mg_per_kg=amended.dose_mg_per_kg, weight_kg=amended.weight_kg_used)
    _check_amended_times(amended, changes)
    # Validate the corrected record as a whole (the lock check is what amendments bypass).
    amended.clean_fields()
    amended.validate_constraints()

    fields = set(changes) | ({"dose_mg"} if "weight_kg_used" in changes else set())
    diff = {
        field: {"from": _json_value(getattr(session, field)), "to": _json_value(getattr(amended, field))}
        for field in sorted(fields)
        if getattr(session, field) != getattr(amended, field)
    }
    if not diff:
        raise ValidationError("The amendment changes nothing.")
    # The amendment first (the original values and the reason): the database's lock lets a
    # signed record change only in a transaction that has recorded an amendment to it.
    amendment = InfusionAmendment.objects.create(session=session, author=by, reason=reason, changes=diff)
    InfusionSession.objects.filter(pk=session.pk).update(
        **{field: getattr(amended, field) for field in diff}, updated_at=timezone.now()
    )
    return amendment
