"""Logging an infusion: weight-based dose, vitals and thresholds, completion, signing, amendments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from sessions.dosing import weight_based_dose_mg
from sessions.models import (
    InfusionAmendment,
    InfusionSession,
    SessionLocked,
    SessionStatus,
    SideEffect,
    VitalSignReading,
)
from sessions.services import (
    series_create,
    session_amend,
    session_complete,
    session_discharge,
    session_record_side_effect,
    session_record_vitals,
    session_sign,
    session_start,
)
from sessions.vitals import VitalPhase, vital_alerts
from tests.factories import ProtocolFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 3, 2)
DAY_START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=NEW_YORK)


@pytest.fixture
def clock():
    with time_machine.travel(DAY_START - dt.timedelta(days=3), tick=False) as traveller:
        yield traveller


@pytest.fixture
def session(clock, patient, protocol, scheduler):
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    # Mid-afternoon of the first infusion day: the morning's events are in the past.
    clock.move_to(DAY_START + dt.timedelta(hours=5))
    return series.sessions.order_by("scheduled_at").first()


def minutes(n: int) -> dt.datetime:
    return DAY_START + dt.timedelta(minutes=n)


def give_infusion(session, clinician) -> InfusionSession:
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=minutes(0))
    session_record_vitals(
        session=session, by=clinician, phase=VitalPhase.PRE, taken_at=minutes(-5), systolic=128, diastolic=82
    )
    session = session_complete(session=session, by=clinician, ended_at=minutes(40), notes="Tolerated well.")
    return session_discharge(session=session, by=clinician, discharged_at=minutes(100))


# --- Dose -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mg_per_kg", "weight", "mg"),
    [("0.50", "80.0", "40.0"), ("0.50", "72.5", "36.3"), ("0.75", "61.3", "46.0"), ("1.00", "102.4", "102.4")],
)
def test_weight_based_dose_is_mg_per_kg_times_weight(mg_per_kg, weight, mg):
    assert weight_based_dose_mg(mg_per_kg=Decimal(mg_per_kg), weight_kg=Decimal(weight)) == Decimal(mg)


@pytest.mark.django_db
def test_starting_an_infusion_fixes_the_dose_with_the_weight_used(session, clinician):
    started = session_start(session=session, by=clinician, weight_kg="80.0")
    assert started.weight_kg_used == Decimal("80.0")
    assert started.dose_mg == Decimal("40.0")  # 0.5 mg/kg x 80 kg
    assert started.dose_mg_per_kg == Decimal("0.50")
    assert started.administered_by == clinician
    stored = InfusionSession.objects.get(pk=session.pk)
    assert (stored.weight_kg_used, stored.dose_mg) == (Decimal("80.0"), Decimal("40.0"))


@pytest.mark.django_db
def test_a_confirmed_new_weight_becomes_the_patients_current_weight(session, clinician, patient):
    session_start(session=session, by=clinician, weight_kg="75.2")
    patient.refresh_from_db()
    assert patient.weight_kg == Decimal("75.2")
    assert patient.weight_recorded_on == MONDAY


@pytest.mark.django_db
def test_without_a_new_weight_the_patients_current_weight_is_used(session, clinician, patient):
    started = session_start(session=session, by=clinician)
    assert started.weight_kg_used == patient.weight_kg == Decimal("72.5")
    assert started.dose_mg == Decimal("36.3")


@pytest.mark.django_db
@pytest.mark.parametrize("weight", ["abc", "5", "400", "-70"])
def test_a_bad_weight_is_refused_and_nothing_changes(session, clinician, patient, weight):
    with pytest.raises(ValidationError) as error:
        session_start(session=session, by=clinician, weight_kg=weight)
    assert "weight_kg" in error.value.message_dict
    session.refresh_from_db()
    patient.refresh_from_db()
    assert session.started_at is None
    assert session.dose_mg is None
    assert patient.weight_kg == Decimal("72.5")


@pytest.mark.django_db
def test_a_weight_based_dose_needs_a_weight(session, clinician, patient):
    patient.weight_kg = patient.weight_recorded_on = None
    patient.save()
    with pytest.raises(ValidationError) as error:
        session_start(session=session, by=clinician)
    assert "weight_kg" in error.value.message_dict


@pytest.mark.django_db
def test_a_fixed_dose_ignores_weight(clock, patient, scheduler, clinician):
    protocol = ProtocolFactory(
        name="Esketamine 84 mg", route="intranasal", drug="esketamine", dose_unit="mg", dose=84, infusion_count=4
    )
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    clock.move_to(DAY_START + dt.timedelta(minutes=5))
    started = session_start(session=series.sessions.order_by("scheduled_at").first(), by=clinician)
    assert started.dose_mg == Decimal("84")
    assert started.weight_kg_used is None


@pytest.mark.django_db
def test_the_database_keeps_a_weight_based_dose_with_its_weight(session):
    with pytest.raises(IntegrityError), transaction.atomic():
        InfusionSession.objects.filter(pk=session.pk).update(dose_mg=Decimal("40.0"), weight_kg_used=None)


@pytest.mark.django_db
def test_only_a_clinician_starts_an_infusion(session, scheduler, patient):
    for user in (scheduler, patient.user):
        with pytest.raises(PermissionDenied):
            session_start(session=session, by=user, weight_kg="80.0")
    session.refresh_from_db()
    assert session.started_at is None


# --- Vital signs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "reading", "measures"),
    [
        (VitalPhase.PRE, {"systolic": 138, "diastolic": 88}, []),
        (VitalPhase.PRE, {"systolic": 145, "diastolic": 85}, ["blood_pressure"]),  # review before starting
        (VitalPhase.PRE, {"systolic": 130, "diastolic": 92}, ["blood_pressure"]),
        (VitalPhase.DURING, {"systolic": 175, "diastolic": 98}, []),
        (VitalPhase.DURING, {"systolic": 185, "diastolic": 95}, ["blood_pressure"]),
        (VitalPhase.DURING, {"heart_rate": 111}, ["heart_rate"]),
        (VitalPhase.DURING, {"heart_rate": 110}, []),
        (VitalPhase.DISCHARGE, {"spo2": 91}, ["spo2"]),
        (VitalPhase.DURING, {"spo2": 92}, []),
    ],
)
def test_readings_past_the_clinics_thresholds_raise_alerts(phase, reading, measures):
    assert [alert.measure for alert in vital_alerts(phase=phase, **reading)] == measures


def test_pre_infusion_blood_pressure_asks_for_review_not_alarm():
    (alert,) = vital_alerts(phase=VitalPhase.PRE, systolic=150, diastolic=95)
    assert alert.level == "review"
    (alert,) = vital_alerts(phase=VitalPhase.DURING, systolic=190, diastolic=95)
    assert alert.level == "alert"


def test_thresholds_are_settings(settings):
    settings.CLINIC_VITALS_ALERT_HEART_RATE = 100
    assert [a.measure for a in vital_alerts(phase=VitalPhase.DURING, heart_rate=105)] == ["heart_rate"]


@pytest.mark.django_db
def test_vitals_are_timestamped_rows_of_the_session(session, clinician):
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=minutes(0))
    for offset, systolic in ((0, 130), (15, 150), (30, 186)):
        reading = session_record_vitals(
            session=session,
            by=clinician,
            phase=VitalPhase.DURING,
            taken_at=minutes(offset),
            systolic=systolic,
            diastolic=90,
            heart_rate=80,
            spo2=98,
        )
    assert [r.taken_at for r in session.vitals.all()] == [minutes(0), minutes(15), minutes(30)]
    assert [a.measure for a in reading.alerts()] == ["blood_pressure"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "reading",
    [
        {"systolic": 120},  # half a blood pressure
        {"systolic": 80, "diastolic": 90},  # systolic below diastolic
        {"systolic": 400, "diastolic": 90},
        {"heart_rate": 500},
        {"spo2": 101},
        {},  # nothing measured
    ],
)
def test_implausible_vitals_are_refused_and_nothing_is_stored(session, clinician, reading):
    with pytest.raises(ValidationError):
        session_record_vitals(session=session, by=clinician, phase=VitalPhase.PRE, taken_at=minutes(0), **reading)
    assert not VitalSignReading.objects.exists()


@pytest.mark.django_db
def test_a_scheduler_cannot_record_vitals(session, scheduler):
    with pytest.raises(PermissionDenied):
        session_record_vitals(session=session, by=scheduler, phase=VitalPhase.PRE, systolic=120, diastolic=80)


@pytest.mark.django_db
def test_side_effects_are_recorded_once_each(session, clinician):
    session_record_side_effect(session=session, by=clinician, kind="nausea_vomiting", severity="mild")
    with pytest.raises(ValidationError):
        session_record_side_effect(session=session, by=clinician, kind="nausea_vomiting", severity="severe")
    with pytest.raises(ValidationError):
        session_record_side_effect(session=session, by=clinician, kind="other", severity="mild")  # needs a note
    assert SideEffect.objects.count() == 1


# --- Completion and discharge ---------------------------------------------------------


@pytest.mark.django_db
def test_a_completed_infusion_records_start_end_dose_and_dissociation(session, clinician):
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=minutes(0))
    done = session_complete(
        session=session, by=clinician, ended_at=minutes(40), dissociation_scale="cadss6", dissociation_score=7
    )
    assert done.status == SessionStatus.COMPLETED
    assert done.ended_at - done.started_at == dt.timedelta(minutes=40)


@pytest.mark.django_db
def test_an_infusion_must_start_before_it_completes(session, clinician):
    with pytest.raises(ValidationError, match="Start the infusion"):
        session_complete(session=session, by=clinician, ended_at=minutes(40))


@pytest.mark.django_db
def test_an_infusion_cannot_end_before_it_started(session, clinician):
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=minutes(0))
    with pytest.raises(ValidationError):
        session_complete(session=session, by=clinician, ended_at=minutes(-10))
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED


@pytest.mark.django_db
@pytest.mark.parametrize(("scale", "score"), [("cadss", 93), ("cadss6", 25), ("", 4), ("cadss", None)])
def test_a_dissociation_score_is_within_its_scale(session, clinician, scale, score):
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=minutes(0))
    with pytest.raises(ValidationError):
        session_complete(
            session=session, by=clinician, ended_at=minutes(40), dissociation_scale=scale, dissociation_score=score
        )
    session.refresh_from_db()
    assert session.status == SessionStatus.SCHEDULED


@pytest.mark.django_db
def test_discharge_comes_after_the_infusion_ends(session, clinician):
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=minutes(0))
    session = session_complete(session=session, by=clinician, ended_at=minutes(40))
    with pytest.raises(ValidationError):
        session_discharge(session=session, by=clinician, discharged_at=minutes(30))
    discharged = session_discharge(session=session, by=clinician, discharged_at=minutes(100))
    assert discharged.discharged_by == clinician


# --- Signing, locking and amendments ----------------------------------------------------


@pytest.mark.django_db
def test_a_signed_record_is_locked(session, clinician):
    signed = session_sign(session=give_infusion(session, clinician), by=clinician)
    assert signed.signed_by == clinician
    signed.notes = "Changed quietly"
    with pytest.raises(SessionLocked):
        signed.save()
    with pytest.raises(SessionLocked):
        session_record_vitals(session=signed, by=clinician, phase=VitalPhase.DISCHARGE, systolic=120, diastolic=80)
    with pytest.raises(SessionLocked):
        signed.vitals.first().delete()
    assert InfusionSession.objects.get(pk=session.pk).notes == "Tolerated well."


@pytest.mark.django_db
def test_a_stale_copy_cannot_overwrite_a_signed_record(session, clinician):
    stale = InfusionSession.objects.get(pk=session.pk)
    session_sign(session=give_infusion(session, clinician), by=clinician)
    stale.notes = "Written from an old form"
    with pytest.raises(SessionLocked):
        stale.save()


@pytest.mark.django_db
def test_only_a_discharged_completed_infusion_can_be_signed(session, clinician):
    with pytest.raises(ValidationError):
        session_sign(session=session, by=clinician)
    assert InfusionSession.objects.get(pk=session.pk).signed_at is None


@pytest.mark.django_db
def test_an_amendment_corrects_a_signed_record_and_keeps_the_original(session, clinician, other_clinician):
    signed = session_sign(session=give_infusion(session, clinician), by=clinician)
    amendment = session_amend(
        session=signed,
        by=other_clinician,
        reason="Weight misread from the scale",
        changes={"weight_kg_used": Decimal("82.0"), "notes": "Tolerated well. Mild nausea at 30 min."},
    )
    signed.refresh_from_db()
    assert signed.weight_kg_used == Decimal("82.0")
    assert signed.dose_mg == Decimal("41.0")  # recomputed: 0.5 mg/kg x 82 kg
    assert signed.is_signed
    assert amendment.changes == {
        "dose_mg": {"from": "40.0", "to": "41.0"},
        "notes": {"from": "Tolerated well.", "to": "Tolerated well. Mild nausea at 30 min."},
        "weight_kg_used": {"from": "80.0", "to": "82.0"},
    }
    assert amendment.author == other_clinician


@pytest.mark.django_db
def test_an_amendment_needs_a_reason_and_a_real_change(session, clinician):
    signed = session_sign(session=give_infusion(session, clinician), by=clinician)
    with pytest.raises(ValidationError):
        session_amend(session=signed, by=clinician, reason="", changes={"notes": "x"})
    with pytest.raises(ValidationError, match="changes nothing"):
        session_amend(session=signed, by=clinician, reason="No-op", changes={"notes": "Tolerated well."})
    assert not InfusionAmendment.objects.exists()


@pytest.mark.django_db
def test_an_amendment_cannot_touch_fields_outside_the_clinical_record(session, clinician):
    signed = session_sign(session=give_infusion(session, clinician), by=clinician)
    with pytest.raises(ValidationError, match="cannot be amended"):
        session_amend(session=signed, by=clinician, reason="x", changes={"patient_id": 1})


@pytest.mark.django_db
def test_an_invalid_amendment_changes_nothing(session, clinician):
    signed = session_sign(session=give_infusion(session, clinician), by=clinician)
    with pytest.raises(ValidationError):
        session_amend(session=signed, by=clinician, reason="Typo", changes={"ended_at": minutes(-30)})
    signed.refresh_from_db()
    assert signed.ended_at == minutes(40)
    assert not InfusionAmendment.objects.exists()


@pytest.mark.django_db
def test_only_clinicians_sign_and_amend(session, clinician, scheduler):
    given = give_infusion(session, clinician)
    with pytest.raises(PermissionDenied):
        session_sign(session=given, by=scheduler)
    signed = session_sign(session=given, by=clinician)
    with pytest.raises(PermissionDenied):
        session_amend(session=signed, by=scheduler, reason="x", changes={"notes": "y"})


@pytest.mark.django_db
def test_a_constraint_the_database_enforces_comes_back_as_a_clear_message(session, clinician):
    with pytest.raises(ValidationError) as error:
        session_record_vitals(session=session, by=clinician, phase=VitalPhase.PRE, systolic=80, diastolic=90)
    assert error.value.messages == [
        "Blood pressure needs both values, 50-300 over 20-200 mmHg, systolic above diastolic."
    ]


@pytest.mark.django_db
def test_an_implausible_value_is_reported_against_its_field(session, clinician):
    with pytest.raises(ValidationError) as error:
        session_record_vitals(session=session, by=clinician, phase=VitalPhase.PRE, heart_rate=500)
    assert "heart_rate" in error.value.message_dict
