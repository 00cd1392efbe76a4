"""The patient page and the portal read a patient's history once (patients.views.PatientHistory)
and derive from it what sessions.selectors computes query by query. They must agree, for
every patient of a generated clinic, clinically and not."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from patients.models import Patient
from patients.views import PatientHistory
from sessions.models import SessionStatus
from sessions.selectors import patient_timeline, patient_treatment_summary, response_curve_data

WEDNESDAY_AFTERNOON = dt.datetime(2026, 11, 18, 14, 0, tzinfo=ZoneInfo("America/New_York"))


def entries(timeline) -> list[tuple]:
    return [(e.when, e.kind, e.title, e.detail, e.badge, e.badge_label, e.record) for e in timeline]


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize(
    "clinic",
    [
        {"command": "seed_scale", "patients": 60},  # five years of boosters, relapses, item-9 answers
        {"command": "seed_demo"},  # every stage of care, made-up infusions, cancellations, amendments
    ],
    ids=["scale", "demo"],
)
def test_the_history_read_once_agrees_with_the_selectors_for_every_patient(clinic):
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=False):
        options = {key: value for key, value in clinic.items() if key != "command"}
        call_command(clinic["command"], stdout=StringIO(), **options)
        checked = 0
        for patient in Patient.objects.all():
            history = PatientHistory.load(patient)
            series = history.current_series
            summary = patient_treatment_summary(patient)
            assert (summary.series, summary.baseline) == (series, history.baseline(series)), patient
            if series is not None:
                assert summary.series.completed_infusions() == series.completed_infusions()
            if summary.latest is not None:
                assert summary.latest.taken_at == history.phq9s[-1].taken_at
            newest = history.series[0] if history.series else None
            for clinical in (True, False):
                assert response_curve_data(patient, clinical=clinical) == history.curve(
                    clinical=clinical, baseline=history.baseline(newest)
                )
                assert entries(patient_timeline(patient, clinical=clinical)) == entries(
                    history.timeline(clinical=clinical)
                )
            upcoming = patient.infusion_sessions.filter(
                status=SessionStatus.SCHEDULED, scheduled_on__gte=timezone.localdate()
            ).order_by("scheduled_at")
            assert list(upcoming) == history.upcoming()
            alerts = patient.phq9_assessments.filter(item_9__gt=0, safety_acknowledged_at__isnull=True)
            assert list(alerts.order_by("taken_at")) == [
                a for a in history.phq9s if a.item_9 > 0 and a.safety_acknowledged_at is None
            ]
            checked += 1
    assert checked >= 35
