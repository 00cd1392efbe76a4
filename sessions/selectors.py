"""Reads about a patient's treatment episodes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from patients.models import Patient, PHQ9Assessment
from patients.phq9 import Outcome, phq9_outcome
from sessions.models import InductionSeries, SessionKind, SessionStatus
from sessions.scheduling import clinic_datetime


@dataclass(frozen=True)
class TreatmentSummary:
    """The current episode (latest induction series) and where the patient stands in it."""

    series: InductionSeries | None
    baseline: PHQ9Assessment | None
    latest: PHQ9Assessment | None
    outcome: Outcome | None


def patient_treatment_summary(patient: Patient) -> TreatmentSummary:
    """Latest PHQ-9 against the current episode's baseline (a new series sets a new one)."""
    series = patient.series.with_progress().order_by("-start_date").first()
    latest = patient.phq9_assessments.order_by("-taken_at").first()
    baseline = series.baseline() if series else None
    outcome = None
    if latest is not None:
        outcome = phq9_outcome(baseline=baseline.total if baseline else None, current=latest.total)
    return TreatmentSummary(series=series, baseline=baseline, latest=latest, outcome=outcome)


@dataclass(frozen=True)
class TimelineEntry:
    when: dt.datetime
    kind: str  # "phq9", "infusion", "booster", "series"
    title: str
    detail: str = ""
    badge: str = ""  # a badge modifier (status or severity value)
    badge_label: str = ""
    #: the record behind the entry (PHQ9Assessment, InfusionSession or InductionSeries)
    record: object = None


def patient_timeline(patient: Patient, *, clinical: bool) -> list[TimelineEntry]:
    """Series, infusions, boosters and PHQ-9s of a patient, newest first (three queries).

    Without ``clinical`` (schedulers) the entries leave out clinical detail: item-9
    answers and the reasons a series was stopped.
    """
    entries: list[TimelineEntry] = []
    for assessment in patient.phq9_assessments.all():
        flag = " · item 9 answered above 0" if clinical and assessment.has_safety_flag else ""
        entries.append(
            TimelineEntry(
                when=assessment.taken_at,
                kind="phq9",
                title=f"PHQ-9: {assessment.total}",
                detail=f"{assessment.get_source_display()}{flag}",
                badge=assessment.severity.value,
                badge_label=assessment.severity.label,
                record=assessment,
            )
        )
    numbers: dict = {}
    for session in patient.infusion_sessions.select_related("series").order_by("scheduled_at"):
        if session.kind == SessionKind.BOOSTER:
            title = "Booster infusion"
        else:
            if session.status == SessionStatus.COMPLETED:
                numbers[session.series_id] = numbers.get(session.series_id, 0) + 1
                title = f"Induction infusion {numbers[session.series_id]} of {session.series.planned_infusions}"
            else:
                title = "Induction infusion"
        entries.append(
            TimelineEntry(
                when=session.started_at or session.scheduled_at,
                kind="booster" if session.kind == SessionKind.BOOSTER else "infusion",
                title=title,
                detail=session.get_route_display(),
                badge=session.status,
                badge_label=session.get_status_display(),
                record=session,
            )
        )
    for series in patient.series.select_related("protocol"):
        detail = series.protocol.name
        if series.discontinued_at:
            detail += f" · discontinued: {series.discontinued_reason}" if clinical else " · discontinued"
        entries.append(
            TimelineEntry(
                when=clinic_datetime(series.start_date, dt.time.min),
                kind="series",
                title="Induction series started",
                detail=detail,
                record=series,
            )
        )
    entries.sort(key=lambda entry: entry.when, reverse=True)
    return entries


@dataclass(frozen=True)
class CurvePoint:
    taken_at: dt.datetime
    total: int
    band: str
    item_9: int
    #: the infusion the questionnaire was filled in for (same clinic day), if any
    infusion: str


@dataclass(frozen=True)
class CurveInfusion:
    when: dt.datetime
    label: str
    is_booster: bool


@dataclass(frozen=True)
class ResponseCurveData:
    points: list[CurvePoint]
    infusions: list[CurveInfusion]
    baseline: PHQ9Assessment | None


def response_curve_data(patient: Patient, *, clinical: bool = True) -> ResponseCurveData:
    """A patient's PHQ-9s and infusions for the response curve (three queries).

    Without ``clinical`` (schedulers) item-9 answers are left out, as on the timeline.
    """
    given = list(
        patient.infusion_sessions.filter(status=SessionStatus.COMPLETED)
        .select_related("series")
        .order_by("scheduled_at")
    )
    infusions: list[CurveInfusion] = []
    by_day: dict[dt.date, str] = {}
    numbers: dict = {}
    for session in given:
        if session.kind == SessionKind.BOOSTER:
            label = "Booster infusion"
        else:
            numbers[session.series_id] = numbers.get(session.series_id, 0) + 1
            label = f"Induction infusion {numbers[session.series_id]} of {session.series.planned_infusions}"
        infusions.append(
            CurveInfusion(session.started_at or session.scheduled_at, label, session.kind == SessionKind.BOOSTER)
        )
        by_day[session.scheduled_on] = label
    points = [
        CurvePoint(
            taken_at=assessment.taken_at,
            total=assessment.total,
            band=assessment.severity.label,
            item_9=assessment.item_9 if clinical else 0,
            infusion=by_day.get(timezone.localdate(assessment.taken_at), ""),
        )
        for assessment in patient.phq9_assessments.order_by("taken_at")
    ]
    series = patient.series.order_by("-start_date").first()
    return ResponseCurveData(points=points, infusions=infusions, baseline=series.baseline() if series else None)
