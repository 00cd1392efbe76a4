"""Reads about a patient's treatment episodes."""

from __future__ import annotations

from dataclasses import dataclass

from patients.models import Patient, PHQ9Assessment
from patients.phq9 import Outcome, phq9_outcome
from sessions.models import InductionSeries


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
