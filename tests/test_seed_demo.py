"""The demo clinic: every stage of care present, logins working, and safe to load twice."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client, RequestFactory

from maintenance.models import BoosterStage
from maintenance.selectors import booster_status
from patients import access
from patients.models import Patient, PatientStatus, PHQ9Assessment
from sessions.models import InfusionSession, SessionKind, SessionStatus

WEDNESDAY_AFTERNOON = dt.datetime(2026, 11, 18, 14, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.mark.slow
@pytest.mark.django_db
def test_the_demo_clinic_has_every_stage_of_care_working_logins_and_loads_once():
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=True):
        call_command("seed_demo", stdout=StringIO())
        today = dt.date(2026, 11, 18)

        patients = list(Patient.objects.all())
        assert 35 <= len(patients) <= 45
        statuses = Counter(p.status for p in patients)
        assert {PatientStatus.INTAKE, PatientStatus.ACTIVE, PatientStatus.ON_HOLD, PatientStatus.DISCHARGED} <= set(
            statuses
        )

        stages = Counter()
        triggered = 0
        for patient in patients:
            status = booster_status(patient=patient, today=today)
            if status:
                stages[status.due.stage] += 1
                triggered += status.trigger is not None
        assert set(stages) == set(BoosterStage), stages
        assert triggered >= 3  # patients relapsing toward a booster

        in_induction = [p for p in patients if any(s.is_in_progress for s in p.series.with_progress())]
        assert len(in_induction) >= 6
        assert InfusionSession.objects.filter(scheduled_on=today).exists()  # today's list
        assert InfusionSession.objects.filter(kind=SessionKind.BOOSTER, status=SessionStatus.SCHEDULED).exists()
        assert PHQ9Assessment.objects.filter(item_9__gt=0, safety_acknowledged_at__isnull=True).exists()
        # Given infusions are fully logged and signed.
        given = InfusionSession.objects.filter(status=SessionStatus.COMPLETED)
        assert given.count() > 150
        assert not given.filter(signed_at__isnull=True).exclude(scheduled_on=today).exists()
        assert not given.filter(vitals__isnull=True).exists()

        counts = (Patient.objects.count(), InfusionSession.objects.count(), PHQ9Assessment.objects.count())
        out = StringIO()
        call_command("seed_demo", stdout=out)
        assert "already loaded" in out.getvalue()
        assert (Patient.objects.count(), InfusionSession.objects.count(), PHQ9Assessment.objects.count()) == counts

    # The demo logins work, each with its role.
    admin = authenticate(RequestFactory().post("/accounts/login/"), username="admin", password="demo")
    assert admin.is_superuser
    assert access.has_role(
        authenticate(RequestFactory().post("/accounts/login/"), username="clinician", password="demo"),
        access.Role.CLINICIAN,
    )
    assert access.has_role(
        authenticate(RequestFactory().post("/accounts/login/"), username="scheduler", password="demo"),
        access.Role.SCHEDULER,
    )

    portal = authenticate(RequestFactory().post("/accounts/login/"), username="patient", password="demo")
    assert access.has_role(portal, access.Role.PATIENT)
    demo_patient = portal.patient
    assert list(access.visible_patients(portal)) == [demo_patient]
    # A full history: a complete induction, boosters and a PHQ-9 trajectory.
    assert all(series.is_complete for series in demo_patient.series.with_progress())
    assert demo_patient.infusion_sessions.filter(kind=SessionKind.BOOSTER, status=SessionStatus.COMPLETED).count() >= 4
    totals = [a.total for a in demo_patient.phq9_assessments.order_by("taken_at")]
    assert len(totals) >= 10
    assert totals[-1] <= totals[0] / 2  # a responder

    # The auditor reads the demo patient's trail: every record the demo loaded, by seed_demo.
    auditor = authenticate(RequestFactory().post("/accounts/login/"), username="auditor", password="demo")
    assert access.is_auditor(auditor)
    assert not access.is_staff_member(auditor)
    client = Client()
    client.force_login(auditor)
    page = client.get("/audit/", {"patient": demo_patient.mrn})
    assert page.status_code == 200
    changes = page.context["changes"]
    assert {change.record for change in changes} >= {"patient", "PHQ-9 assessment", "infusion session"}
    assert {change.command for change in changes} == {"seed_demo"}
