"""The patient page and the portal read a patient's history once (sessions.selectors.PatientHistory,
one statement on PostgreSQL) and derive from it the treatment summary, the response curve, the
timeline, the appointments, the open safety alerts and the booster status. Those rules have
their one home there; this test pins them to the same rules read query by query, for every
patient of two generated clinics, clinically and not:

- the reference selectors below, as sessions.selectors had them before (each read its own rows);
- the models' own query methods (``InductionSeries.baseline``, ``completed_infusions``);
- ``maintenance.selectors.booster_statuses``, the reminder scan's independent SQL reading of
  the booster rules.
"""

from __future__ import annotations

import datetime as dt
import uuid
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from maintenance.models import MaintenancePlan
from maintenance.selectors import booster_status, booster_status_from_history, booster_statuses
from patients.models import Patient
from patients.phq9 import phq9_outcome
from sessions.models import InductionSeries, SessionKind, SessionStatus
from sessions.scheduling import clinic_datetime
from sessions.selectors import (
    CurveInfusion,
    CurvePoint,
    PatientHistory,
    ResponseCurveData,
    TimelineEntry,
    TreatmentSummary,
    patient_timeline,
    patient_treatment_summary,
    response_curve_data,
)

WEDNESDAY_AFTERNOON = dt.datetime(2026, 11, 18, 14, 0, tzinfo=ZoneInfo("America/New_York"))

# --- The rules read query by query (the reference) ---------------------------------------------


def reference_summary(patient: Patient) -> TreatmentSummary:
    series = patient.series.with_progress().order_by("-start_date").first()
    latest = patient.phq9_assessments.order_by("-taken_at").first()
    baseline = series.baseline() if series else None
    outcome = None
    if latest is not None:
        outcome = phq9_outcome(baseline=baseline.total if baseline else None, current=latest.total)
    return TreatmentSummary(series=series, baseline=baseline, latest=latest, outcome=outcome)


def reference_timeline(patient: Patient, *, clinical: bool) -> list[TimelineEntry]:
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
        elif session.status == SessionStatus.COMPLETED:
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


def reference_curve(patient: Patient, *, clinical: bool) -> ResponseCurveData:
    given = patient.infusion_sessions.filter(status=SessionStatus.COMPLETED).select_related("series")
    infusions, by_day, numbers = [], {}, {}
    for session in given.order_by("scheduled_at"):
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


def entries(timeline) -> list[tuple]:
    return [(e.when, e.kind, e.title, e.detail, e.badge, e.badge_label, e.record) for e in timeline]


def assert_same(mine, orm) -> None:
    """The same row read the same way: model, primary key, database, loaded fields."""
    assert (type(mine), mine.pk, mine._state.db, mine._state.adding) == (
        type(orm),
        orm.pk,
        orm._state.db,
        orm._state.adding,
    )
    assert mine.get_deferred_fields() == orm.get_deferred_fields()
    for field in type(orm)._meta.concrete_fields:
        if field.attname not in orm.get_deferred_fields():
            assert getattr(mine, field.attname) == getattr(orm, field.attname), field.attname


def generated(clinic: dict) -> None:
    options = {key: value for key, value in clinic.items() if key != "command"}
    call_command(clinic["command"], stdout=StringIO(), **options)


CLINICS = pytest.mark.parametrize(
    "clinic",
    [
        {"command": "seed_scale", "patients": 60},  # five years of boosters, relapses, item-9 answers
        {"command": "seed_demo"},  # every stage of care, made-up infusions, cancellations, amendments
    ],
    ids=["scale", "demo"],
)


@pytest.mark.slow
@pytest.mark.django_db
@CLINICS
def test_the_history_read_once_agrees_with_the_rules_read_query_by_query(clinic):
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=False):
        generated(clinic)
        today = timezone.localdate()
        scanned = {status.plan.patient_id: status for status in booster_statuses(today=today)}
        checked = boosters = 0
        for patient in Patient.objects.all():
            history = PatientHistory.load(patient)
            summary, reference = history.summary(), reference_summary(patient)
            assert summary == reference, patient
            assert summary == patient_treatment_summary(patient), patient
            if summary.series is not None:
                assert summary.series.completed_infusions() == reference.series.completed_infusions()
                assert history.current_baseline == summary.series.baseline()
            for series in history.series:
                assert series.completed_infusions() == series.sessions.filter(status=SessionStatus.COMPLETED).count()
                assert history.baseline(series) == series.baseline(), series
            for clinical in (True, False):
                curve = history.curve(clinical=clinical)
                assert curve == reference_curve(patient, clinical=clinical), patient
                assert curve == response_curve_data(patient, clinical=clinical)
                timeline = entries(history.timeline(clinical=clinical))
                assert timeline == entries(reference_timeline(patient, clinical=clinical)), patient
                assert timeline == entries(patient_timeline(patient, clinical=clinical))
            upcoming = patient.infusion_sessions.filter(status=SessionStatus.SCHEDULED, scheduled_on__gte=today)
            assert history.upcoming() == list(upcoming.order_by("scheduled_at"))
            alerts = patient.phq9_assessments.filter(item_9__gt=0, safety_acknowledged_at__isnull=True)
            assert history.open_alerts() == list(alerts.order_by("taken_at"))
            completed = patient.infusion_sessions.filter(status=SessionStatus.COMPLETED)
            assert history.last_completed_infusion() == completed.order_by("-scheduled_on", "-scheduled_at").first()

            plan = MaintenancePlan.objects.filter(patient=patient).first()
            status = booster_status_from_history(plan=plan, history=history, today=today)
            assert status == scanned.get(patient.pk), patient
            assert status == booster_status(patient=patient, today=today)
            boosters += status is not None
            checked += 1
    assert checked >= 35
    assert boosters >= 3


@pytest.mark.slow
@pytest.mark.django_db
@CLINICS
def test_the_history_in_one_statement_is_what_the_orm_reads(clinic):
    """On PostgreSQL ``PatientHistory.load`` reads its rows in one statement built from the
    models (sessions.selectors._Statement): the same instances, fields and
    deferred fields as the ORM's three querysets, the series' protocols and decrypted
    reasons included."""
    generated(clinic)
    # A stopped series: its reason is encrypted, so the statement's rows go through the
    # field's converter as the ORM's do.
    stopped = InductionSeries.objects.order_by("start_date").first()
    InductionSeries.objects.filter(pk=stopped.pk).update(
        discontinued_at=timezone.now(), discontinued_reason="Dissociation <severe> & nausea"
    )

    reasons = []
    for patient in Patient.objects.all():
        history = PatientHistory.load(patient)
        orm = PatientHistory._read_with_the_orm(patient)  # what SQLite (make run) reads
        for mine, theirs in zip((history.phq9s, history.sessions, history.series), orm, strict=True):
            assert len(mine) == len(theirs)
            for one, other in zip(mine, theirs, strict=True):
                assert_same(one, other)
                assert one.patient is patient
        for series, other in zip(history.series, orm[2], strict=True):
            assert_same(series.protocol, other.protocol)
            reasons += [series.discontinued_reason] if series.discontinued_reason else []
    assert "Dissociation <severe> & nausea" in reasons


@pytest.mark.django_db
@CLINICS
def test_the_patient_read_with_their_history_is_what_select_related_reads(clinic):
    """The patient page reads the patient with their clinician, login and maintenance plan
    in the history's round trip: the same instances and related objects as
    ``select_related``, None where there is none."""
    generated(clinic)
    related = ("primary_clinician", "user", "maintenance_plan")
    seen = set()
    for orm in Patient.objects.select_related(*related):
        patient, history = PatientHistory.load_with_patient(orm.pk)
        assert_same(patient, orm)
        for name in ("primary_clinician", "user"):
            mine, theirs = getattr(patient, name), getattr(orm, name)
            assert (mine is None) == (theirs is None)
            seen.add((name, mine is None))
            if mine is not None:
                assert_same(mine, theirs)
        plan = getattr(patient, "maintenance_plan", None)
        assert (plan is None) == (getattr(orm, "maintenance_plan", None) is None)
        seen.add(("plan", plan is None))
        if plan is not None:
            assert_same(plan, orm.maintenance_plan)
            assert plan.patient is patient
        if patient.user is not None:
            assert patient.user.patient is patient
        loaded = PatientHistory.load(orm)
        for rows in ("phq9s", "sessions", "series"):
            assert [row.pk for row in getattr(history, rows)] == [row.pk for row in getattr(loaded, rows)]
    assert PatientHistory.load_with_patient(uuid.uuid4()) == (None, None)
    assert {("plan", True), ("plan", False), ("user", True), ("user", False)} <= seen
