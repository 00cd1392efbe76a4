"""The scale clinic (manage.py seed_scale): a small one here, checked against the clinic's
rules, in replica mode and with the triggers on, and the refusals that keep it safe."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, GeneratedField, Q
from django.test import Client, RequestFactory

from maintenance.models import MaintenancePlan, Notification, NotificationKind
from maintenance.selectors import booster_status
from patients import access, scale
from patients.models import Patient, PatientStatus, PHQ9Assessment, PHQ9Source
from patients.phq9 import phq9_outcome
from sessions.models import (
    InductionSeries,
    InfusionSession,
    SessionKind,
    SessionLocked,
    SessionStatus,
    SideEffect,
    VitalSignReading,
)
from sessions.scheduling import clinic_date

CLINIC = ZoneInfo("America/New_York")
#: A fixed afternoon: with a fixed seed, the clinic generated is the same every run.
WEDNESDAY_AFTERNOON = dt.datetime(2026, 11, 18, 14, 0, tzinfo=CLINIC)
TODAY = dt.date(2026, 11, 18)
PASSWORD = "scale-test-password"


def _seed(**options) -> str:
    out = StringIO()
    call_command("seed_scale", stdout=out, password=PASSWORD, **options)
    return out.getvalue()


def _login(username: str) -> User | None:
    return authenticate(RequestFactory().post("/accounts/login/"), username=username, password=PASSWORD)


def _validate(instance) -> None:
    """The model's own rules: fields, clean() and every constraint (checked in Python, the
    database having checked them once already). A signed record's clean() refuses any change
    by design, so its fields and constraints are validated without it."""
    session = instance if isinstance(instance, InfusionSession) else getattr(instance, "session", None)
    if session is not None and session.signed_at is not None:
        with pytest.raises(SessionLocked):
            instance.clean()
        instance.clean_fields()
        instance.validate_unique()
        instance.validate_constraints()
    else:
        instance.full_clean()


def _scale_events(model_name: str, ids) -> int:
    return apps.get_model("audit", model_name).objects.filter(pgh_obj_id__in=list(ids)).count()


def test_the_column_lists_cover_every_stored_field():
    for _name, table, columns in scale.TABLES:
        model = next(m for m in apps.get_models(include_auto_created=True) if m._meta.db_table == table)
        stored = {f.column for f in model._meta.concrete_fields if not isinstance(f, GeneratedField)}
        if table == "auth_user_groups":
            stored.discard("id")  # numbered by the table's sequence
        assert set(columns) == stored, table


@pytest.mark.django_db
def test_a_small_scale_clinic_follows_the_clinics_rules():
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=False):
        out = _seed(patients=40, seed=11)
        assert "replica mode" in out
        assert "patients_patient" in out
        assert "scale_patient" in out
        assert PASSWORD in out

        patients = Patient.objects.filter(mrn__startswith=scale.MRN_PREFIX)
        assert patients.count() == Patient.objects.count() == 40
        assert {p.status for p in patients} == set(PatientStatus.values)
        # Replica mode: a data import, no change history; and every foreign key holds.
        assert _scale_events("PatientEvent", patients.values_list("pk", flat=True)) == 0
        assert scale.dangling_references(connection) == {}

        # Every infusion given is fully logged: dose, three vital signs, a PHQ-9 that day,
        # discharge and signature (all before now).
        given = InfusionSession.objects.filter(status=SessionStatus.COMPLETED)
        assert given.count() > 300
        assert not given.annotate(n=Count("vitals")).exclude(n=3).exists()
        assert (
            not given.filter(Q(signed_at__isnull=True) | Q(discharged_at__isnull=True))
            .exclude(scheduled_on=TODAY)
            .exists()
        )
        phq9_days = {(a.patient_id, clinic_date(a.taken_at)) for a in PHQ9Assessment.objects.all()}
        assert all((s.patient_id, s.scheduled_on) in phq9_days for s in given)
        assert not given.filter(dose_mg__isnull=True).exists()
        assert SideEffect.objects.exists()
        assert InfusionSession.objects.filter(status=SessionStatus.SCHEDULED, scheduled_on__gt=TODAY).exists()

        # Series have their sessions: all planned infusions booked or given, unless stopped.
        for series in InductionSeries.objects.with_progress():
            booked = series.sessions.filter(status__in=[SessionStatus.SCHEDULED, SessionStatus.COMPLETED]).count()
            if series.discontinued_at is None:
                assert booked == series.planned_infusions, series
            else:
                assert series.completed_infusions() < series.planned_infusions
                assert not series.sessions.filter(status=SessionStatus.SCHEDULED).exists()
        assert InductionSeries.objects.filter(discontinued_at__isnull=False).exists()

        # Boosters come after a complete induction, under a plan, never inside its minimum interval.
        boosters = InfusionSession.objects.filter(kind=SessionKind.BOOSTER)
        assert boosters.filter(status=SessionStatus.COMPLETED).count() > 20
        plans = {plan.patient_id: plan for plan in MaintenancePlan.objects.all()}
        assert set(boosters.values_list("patient_id", flat=True)) <= set(plans)
        first_induction_end = {}
        for series in InductionSeries.objects.with_progress():
            if series.is_complete:
                end = series.sessions.filter(status=SessionStatus.COMPLETED).latest("scheduled_on").scheduled_on
                first_induction_end[series.patient_id] = min(first_induction_end.get(series.patient_id, end), end)
        last_given = {}
        for patient_id, kind, status, day in InfusionSession.objects.order_by("patient_id", "scheduled_on").values_list(
            "patient_id", "kind", "status", "scheduled_on"
        ):
            if kind == SessionKind.BOOSTER:
                assert first_induction_end[patient_id] < day
                minimum = plans[patient_id].min_interval_days
                if status == SessionStatus.COMPLETED and minimum:
                    assert (day - last_given[patient_id]).days >= minimum
            if status == SessionStatus.COMPLETED:
                last_given[patient_id] = day

        # Trajectories: each complete series against its baseline, a week after its end.
        outcomes = Counter()
        for series in InductionSeries.objects.with_progress().select_related("patient"):
            last = series.sessions.filter(status=SessionStatus.COMPLETED).order_by("-scheduled_at").first()
            if not series.is_complete or last.scheduled_on > TODAY - dt.timedelta(days=8):
                continue
            baseline = series.baseline()
            follow_up = (
                series.patient.phq9_assessments.filter(
                    taken_at__gt=last.ended_at, taken_at__lt=last.ended_at + dt.timedelta(days=8)
                )
                .order_by("taken_at")
                .first()
            )
            outcome = phq9_outcome(baseline=baseline.total, current=follow_up.total)
            kind = "remission" if outcome.remission else "response" if outcome.response else "none"
            outcomes[kind] += 1
            if kind == "none":
                assert follow_up.total > baseline.total / 2
        assert outcomes["remission"], outcomes
        assert outcomes["response"], outcomes
        assert outcomes["none"], outcomes
        # Responders get maintenance plans. Most come back for a booster before their symptoms
        # do; relapsers' scores have risen past the plan's trigger by their booster visit.
        assert MaintenancePlan.objects.filter(is_active=True).exists()
        maintained = Counter()
        for plan in MaintenancePlan.objects.select_related("patient"):
            scores = [(clinic_date(a.taken_at), a.total) for a in plan.patient.phq9_assessments.order_by("taken_at")]
            given = plan.patient.infusion_sessions.filter(status=SessionStatus.COMPLETED).order_by("scheduled_on")
            triggered, induction_end = [], None
            for kind, day in given.values_list("kind", "scheduled_on"):
                if kind == SessionKind.INDUCTION:
                    induction_end = day
                    continue
                # The rise counts from the lowest score since the latest induction ended.
                low = min(total for taken, total in scores if induction_end <= taken < day)
                total = next(total for taken, total in scores if taken == day)
                triggered.append(plan.trigger_reason(total=total, post_induction_low=low) is not None)
            if triggered:
                maintained["relapsing" if sum(triggered) >= len(triggered) / 2 else "stable"] += 1
        assert maintained["relapsing"] >= 1, maintained
        assert maintained["stable"] > maintained["relapsing"], maintained
        assert any(booster_status(patient=plan.patient, today=TODAY) for plan in MaintenancePlan.objects.in_force())

        # Item 9: acknowledged with the action taken, except a handful still alerting staff.
        flagged = PHQ9Assessment.objects.filter(item_9__gt=0)
        open_alerts = flagged.filter(safety_acknowledged_at__isnull=True)
        assert flagged.filter(safety_acknowledged_at__isnull=False).exists()
        assert 3 <= open_alerts.count() <= 5
        assert Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT, read_at__isnull=True).count() >= 3
        assert PHQ9Assessment.objects.filter(source=PHQ9Source.PORTAL).exists()

        # The model's own rules hold on a sample of every model.
        for model in (Patient, PHQ9Assessment, InductionSeries, InfusionSession, VitalSignReading, SideEffect):
            for instance in model.objects.order_by("?")[:8]:
                _validate(instance)
        for plan in MaintenancePlan.objects.all()[:8]:
            _validate(plan)
        for session in InfusionSession.objects.filter(signed_at__isnull=True)[:8]:
            session.full_clean()

        # The five-year patient: five full years of care, a booster booked, a working portal login.
        five_year = Patient.objects.get(mrn=f"{scale.MRN_PREFIX}{scale.FIRST_MRN}")
        first = five_year.phq9_assessments.order_by("taken_at").first()
        assert clinic_date(first.taken_at) <= dt.date(2021, 11, 18)
        recent = five_year.infusion_sessions.filter(scheduled_on__gte=TODAY - dt.timedelta(days=60))
        assert recent.filter(status=SessionStatus.COMPLETED).exists()
        assert five_year.infusion_sessions.filter(kind=SessionKind.BOOSTER).count() > 30
        assert five_year.infusion_sessions.filter(status=SessionStatus.SCHEDULED, scheduled_on__gt=TODAY).exists()
        portal_user = _login(scale.PORTAL_USERNAME)
        assert portal_user == five_year.user
        assert access.has_role(portal_user, access.Role.PATIENT)
        clinician = _login(scale.CLINICIAN_USERNAME)
        assert access.is_clinician(clinician)
        assert access.has_role(_login(scale.SCHEDULER_USERNAME), access.Role.SCHEDULER)
        assert User.objects.filter(groups__name="clinician", username__startswith="scale_").count() == scale.CLINICIANS

        client = Client()
        client.force_login(portal_user)
        page = client.get("/portal/")
        assert page.status_code == 200
        assert five_year.first_name in page.content.decode()
        client.force_login(clinician)
        assert client.get(five_year.get_absolute_url()).status_code == 200


@pytest.mark.django_db
def test_a_second_run_is_refused_without_replace_and_replace_reloads_only_the_scale_data(monkeypatch):
    _seed(patients=12, seed=3)
    counts = (Patient.objects.count(), InfusionSession.objects.count(), PHQ9Assessment.objects.count())
    with pytest.raises(CommandError, match=r"already has 12 patients.*--replace"):
        _seed(patients=12, seed=3)

    # Another clinic's patient stays; the scale data is replaced, same seed, same clinic.
    other = Patient.objects.create(
        mrn="KC-1", first_name="Ann", last_name="Other", date_of_birth=dt.date(1980, 1, 1), primary_diagnosis="mdd"
    )
    out = _seed(patients=12, seed=3, replace=True)
    assert "Deleted the earlier scale data" in out
    assert Patient.objects.filter(pk=other.pk).exists()
    assert (Patient.objects.count() - 1, InfusionSession.objects.count(), PHQ9Assessment.objects.count()) == counts
    assert scale.dangling_references(connection) == {}
    assert _login(scale.PORTAL_USERNAME).patient.mrn == f"{scale.MRN_PREFIX}{scale.FIRST_MRN}"
    assert not Notification.objects.filter(patient__isnull=True, kind=NotificationKind.SAFETY_ALERT).exists()

    # A role that may not turn triggers off cannot delete signed records: refused, clearly.
    monkeypatch.setattr(scale, "replica_allowed", lambda connection: False)
    with pytest.raises(CommandError, match=r"--replace needs replica mode.*not a superuser"):
        _seed(patients=12, replace=True)


@pytest.mark.django_db
def test_with_the_triggers_on_the_guards_accept_the_load_and_the_history_records_it():
    out = _seed(patients=8, seed=5, no_replica=True)
    assert "triggers on" in out

    patients = Patient.objects.filter(mrn__startswith=scale.MRN_PREFIX)
    assert patients.count() == 8
    signed = InfusionSession.objects.filter(signed_at__isnull=False)
    assert signed.exists()
    assert not signed.annotate(n=Count("vitals")).exclude(n=3).exists()
    # One insert event per patient, and the signature of each signed session as an update,
    # all under the command's context.
    assert _scale_events("PatientEvent", patients.values_list("pk", flat=True)) == 8
    events = apps.get_model("audit", "InfusionSessionEvent").objects
    assert events.filter(pgh_label="update", signed_at__isnull=False).count() == signed.count()
    assert events.filter(pgh_context__metadata__command="seed_scale").count() == events.count()
    assert _scale_events("VitalSignReadingEvent", VitalSignReading.objects.values_list("pk", flat=True)) == (
        VitalSignReading.objects.count()
    )

    # The guards stay on: a signed record is locked as ever.
    with pytest.raises(DatabaseError, match="signed and locked"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE infusions_infusionsession SET notes = '' WHERE id = %s", [signed.first().pk])


@pytest.mark.django_db
def test_refuses_anything_but_postgresql(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="PostgreSQL"):
        _seed(patients=5)
    monkeypatch.undo()
    with pytest.raises(CommandError, match="at least 1"):
        _seed(patients=0)


@pytest.mark.django_db
def test_the_cheaper_history_triggers_ignore_nothing_and_keep_what_was_set():
    with transaction.atomic(), connection.cursor() as cursor:
        scale.spare_trigger_exceptions(cursor)
        cursor.execute("SELECT current_setting('pgtrigger.ignore')")
        assert cursor.fetchone()[0] == "{}"
        cursor.execute("SELECT set_config('pgtrigger.ignore', '{some_trigger}', true)")
        scale.spare_trigger_exceptions(cursor)
        cursor.execute("SELECT current_setting('pgtrigger.ignore')")
        assert cursor.fetchone()[0] == "{some_trigger}"
