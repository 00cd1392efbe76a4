"""Rules that guard against subtler bad input: days, spacing, numbers, episodes, roles."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from maintenance.selectors import booster_status
from maintenance.services import booster_schedule
from patients.models import PHQ9Assessment
from patients.phq9 import ITEM_FIELDS
from patients.services import phq9_record
from sessions.models import InductionSeries, InfusionSession, SessionStatus
from sessions.scheduling import clinic_datetime
from sessions.selectors import patient_treatment_summary
from sessions.services import (
    series_create,
    series_discontinue,
    series_schedule_makeup,
    session_amend,
    session_cancel,
    session_complete,
    session_discharge,
    session_mark_missed,
    session_record_vitals,
    session_reschedule,
    session_sign,
    session_start,
)
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, UserFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 3, 2)


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return clinic_datetime(day, dt.time(hour))


@pytest.fixture
def clock():
    with time_machine.travel(at(MONDAY - dt.timedelta(days=3), 12), tick=False) as traveller:
        yield traveller


@pytest.fixture
def series(clock, patient, protocol, scheduler):
    return series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)


def sessions_of(series) -> list[InfusionSession]:
    return list(series.sessions.order_by("scheduled_at"))


def give(session, clinician, clock, *, sign: bool = False) -> InfusionSession:
    start = session.scheduled_at
    clock.move_to(start + dt.timedelta(hours=3))
    session = session_start(session=session, by=clinician, weight_kg="70.0", started_at=start)
    session = session_complete(session=session, by=clinician, ended_at=start + dt.timedelta(minutes=40))
    if sign:
        session = session_discharge(session=session, by=clinician, discharged_at=start + dt.timedelta(minutes=90))
        session = session_sign(session=session, by=clinician)
    return session


# --- An infusion is given on its own day -----------------------------------------------


@pytest.mark.django_db
def test_an_infusion_cannot_be_started_on_another_day_than_booked(series, clinician, clock):
    second = sessions_of(series)[1]
    clock.move_to(at(MONDAY, 11))
    with pytest.raises(ValidationError) as error:
        session_start(session=second, by=clinician, weight_kg="70.0")
    assert "started_at" in error.value.message_dict
    second.refresh_from_db()
    assert second.started_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("step", ["complete", "discharge"])
def test_an_infusion_cannot_end_or_discharge_in_the_future(series, clinician, clock, step):
    session = sessions_of(series)[0]
    clock.move_to(at(MONDAY, 9))
    session = session_start(session=session, by=clinician, weight_kg="70.0")
    later = at(MONDAY, 15)
    if step == "complete":
        with pytest.raises(ValidationError):
            session_complete(session=session, by=clinician, ended_at=later)
    else:
        clock.move_to(at(MONDAY, 10))
        session = session_complete(session=session, by=clinician)
        with pytest.raises(ValidationError):
            session_discharge(session=session, by=clinician, discharged_at=later)


# --- Who may act ----------------------------------------------------------------------


@pytest.mark.django_db
def test_scheduling_without_a_user_is_refused(clock, patient, protocol):
    with pytest.raises(PermissionDenied):
        series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=None)
    assert not InductionSeries.objects.exists()


@pytest.mark.django_db
def test_moving_or_cancelling_without_a_user_is_refused(series):
    first = sessions_of(series)[0]
    with pytest.raises(PermissionDenied):
        session_reschedule(session=first, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=None)
    with pytest.raises(PermissionDenied):
        session_cancel(session=first, by=None)


@pytest.mark.django_db
def test_a_clinician_account_cannot_be_a_patients_portal_account(patient):
    clinician = UserFactory(username="dr_x", role="clinician")
    patient.user = clinician
    with pytest.raises(ValidationError) as error:
        patient.full_clean()
    assert "user" in error.value.message_dict


# --- Spacing and status on every move -------------------------------------------------


@pytest.mark.django_db
def test_a_move_next_to_another_infusion_is_refused(series, scheduler):
    second = sessions_of(series)[1]  # Thursday (Monday is the first)
    with pytest.raises(ValidationError, match="consecutive days"):
        session_reschedule(session=second, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)
    second.refresh_from_db()
    assert second.scheduled_on == MONDAY + dt.timedelta(days=3)


@pytest.mark.django_db
def test_a_move_into_the_past_is_refused(series, scheduler, clock):
    first = sessions_of(series)[0]
    clock.move_to(at(MONDAY + dt.timedelta(days=2), 8))
    with pytest.raises(ValidationError, match="past"):
        session_reschedule(session=sessions_of(series)[1], scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)
    assert first.scheduled_on == MONDAY


@pytest.mark.django_db
def test_an_infusion_under_way_cannot_be_moved_or_cancelled(series, scheduler, clinician, clock):
    first = sessions_of(series)[0]
    clock.move_to(at(MONDAY, 9))
    session_start(session=first, by=clinician, weight_kg="70.0")
    with pytest.raises(ValidationError, match="under way"):
        session_reschedule(session=first, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)
    with pytest.raises(ValidationError):
        session_cancel(session=first, by=scheduler)
    with pytest.raises(ValidationError, match="under way"):
        series_discontinue(series=series, by=scheduler, reason="Moving away")
    first.refresh_from_db()
    assert first.status == SessionStatus.SCHEDULED
    assert first.started_at is not None


@pytest.mark.django_db
def test_a_make_up_next_to_another_infusion_is_refused(series, scheduler):
    first = sessions_of(series)[0]
    session_cancel(session=first, by=scheduler, reason="Unwell")
    with pytest.raises(ValidationError, match="consecutive days"):
        # Wednesday, the day before Thursday's infusion.
        series_schedule_makeup(series=series, scheduled_at=at(MONDAY + dt.timedelta(days=2)), by=scheduler)
    assert series.sessions.count() == 6


@pytest.mark.django_db
def test_a_make_up_needs_a_time_zone(series, scheduler):
    session_cancel(session=sessions_of(series)[0], by=scheduler)
    with pytest.raises(ValidationError, match="time zone"):
        series_schedule_makeup(series=series, scheduled_at=dt.datetime(2026, 3, 3, 10), by=scheduler)


# --- Numbers ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("weight", ["Infinity", "NaN", "0", "-5", "", "seventy"])
def test_a_non_finite_or_absurd_weight_is_refused_at_the_start(series, clinician, clock, weight):
    session = sessions_of(series)[0]
    clock.move_to(at(MONDAY, 9))
    if weight == "":
        session.patient.weight_kg = session.patient.weight_recorded_on = None
        session.patient.save()
    with pytest.raises(ValidationError) as error:
        session_start(session=session, by=clinician, weight_kg=weight)
    assert "weight_kg" in error.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("weight", ["Infinity", "NaN", "0", "-5"])
def test_a_non_finite_or_absurd_weight_is_refused_in_an_amendment(series, clinician, clock, weight):
    signed = give(sessions_of(series)[0], clinician, clock, sign=True)
    with pytest.raises(ValidationError) as error:
        session_amend(session=signed, by=clinician, reason="Scale", changes={"weight_kg_used": weight})
    assert "weight_kg_used" in error.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("answer", [2.7, True, "2", None])
def test_a_phq9_answer_must_be_a_whole_number_0_to_3(patient, clinician, answer):
    answers = dict.fromkeys(ITEM_FIELDS, 1) | {"item_2": answer}
    with pytest.raises(ValidationError) as error:
        phq9_record(patient=patient, answers=answers, entered_by=clinician)
    assert "item_2" in error.value.message_dict
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_the_database_keeps_the_dose_equal_to_mg_per_kg_times_weight(series, clinician, clock):
    given = give(sessions_of(series)[0], clinician, clock)
    assert given.dose_mg == Decimal("35.0")  # 0.5 mg/kg x 70 kg
    with pytest.raises(IntegrityError), transaction.atomic():
        InfusionSession.objects.filter(pk=given.pk).update(dose_mg=Decimal("300.0"))


@pytest.mark.django_db
def test_a_discontinued_series_records_why(series):
    with pytest.raises(IntegrityError), transaction.atomic():
        InductionSeries.objects.filter(pk=series.pk).update(discontinued_at=series.created_at)


# --- Boosters ------------------------------------------------------------------------------


@pytest.fixture
def completed(series, clinician, clock):
    for session in sessions_of(series):
        give(session, clinician, clock)
    return series


@pytest.mark.django_db
def test_a_booster_before_the_plans_minimum_interval_is_refused(completed, patient, protocol, scheduler, clock):
    MaintenancePlanFactory(patient=patient, protocol=protocol, min_interval_days=14)
    last = sessions_of(completed)[-1].scheduled_on  # Thursday 19 March
    clock.move_to(at(last + dt.timedelta(days=1), 9))
    with pytest.raises(ValidationError, match="minimum interval"):
        booster_schedule(patient=patient, scheduled_at=at(last + dt.timedelta(days=11)), by=scheduler)
    booster_schedule(patient=patient, scheduled_at=at(last + dt.timedelta(days=14)), by=scheduler)


@pytest.mark.django_db
def test_a_booster_the_day_after_the_last_infusion_is_refused(completed, patient, protocol, scheduler, clock):
    MaintenancePlanFactory(patient=patient, protocol=protocol, min_interval_days=None)
    last = sessions_of(completed)[-1].scheduled_on
    clock.move_to(at(last, 15))
    with pytest.raises(ValidationError, match="consecutive days"):
        booster_schedule(patient=patient, scheduled_at=at(last + dt.timedelta(days=1)), by=scheduler)


@pytest.mark.django_db
def test_the_end_of_induction_score_counts_as_the_post_induction_low(completed, patient, protocol):
    MaintenancePlanFactory(patient=patient, protocol=protocol, trigger_phq9_threshold=None, trigger_phq9_rise=5)
    last = sessions_of(completed)[-1]
    # The pre-infusion PHQ-9 of the last induction visit: 2.
    PHQ9Factory(patient=patient, level=0, item_1=2, taken_at=last.scheduled_at - dt.timedelta(minutes=20))
    rise = PHQ9Factory(
        patient=patient, level=0, item_1=3, item_2=3, item_3=1, taken_at=at(last.scheduled_on + dt.timedelta(days=10))
    )
    status = booster_status(patient=patient, today=last.scheduled_on + dt.timedelta(days=10))
    assert status.trigger.assessment == rise  # 7 is 5 above the low of 2


# --- Episodes ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_series_has_its_own_baseline(completed, patient, protocol, scheduler, clinician, clock):
    first_start = sessions_of(completed)[0].scheduled_at
    PHQ9Factory(patient=patient, level=2, taken_at=first_start - dt.timedelta(days=2))  # 16
    assert completed.baseline().total == 16
    PHQ9Factory(patient=patient, level=0, taken_at=first_start + dt.timedelta(days=20))  # 0: remission

    # Months later, relief has faded: a new episode, with a new baseline.
    restart = MONDAY + dt.timedelta(days=7 * 26)
    clock.move_to(at(restart - dt.timedelta(days=3), 9))
    PHQ9Factory(patient=patient, level=3, taken_at=at(restart - dt.timedelta(days=3), 9))  # 24
    second = series_create(patient=patient, protocol=protocol, start_date=restart, created_by=scheduler)
    assert second.baseline().total == 24
    clock.move_to(at(restart + dt.timedelta(days=10), 9))
    PHQ9Factory(patient=patient, level=1, taken_at=at(restart + dt.timedelta(days=10), 8))  # 8

    summary = patient_treatment_summary(patient)
    assert summary.series == second
    assert summary.baseline.total == 24
    assert summary.outcome.response is True  # 8 is a 67 % reduction from 24 (not from 16)
    assert summary.outcome.remission is False


@pytest.mark.django_db
def test_a_phq9_label_shows_the_clinic_day_not_the_utc_day():
    evening = dt.datetime(2026, 3, 2, 21, 30, tzinfo=NEW_YORK)  # 02:30 UTC on 3 March
    assessment = PHQ9Factory(patient=PatientFactory(mrn="TZ-1"), taken_at=evening)
    assert str(assessment) == "PHQ-9 TZ-1 2026-03-02"


@pytest.mark.django_db
def test_a_reading_cannot_be_taken_in_the_future(series, clinician, clock):
    session = sessions_of(series)[0]
    clock.move_to(at(MONDAY, 9))
    with pytest.raises(ValidationError) as error:
        session_record_vitals(
            session=session, by=clinician, phase="pre", taken_at=at(MONDAY, 12), systolic=120, diastolic=80
        )
    assert "taken_at" in error.value.message_dict


@pytest.mark.django_db
def test_an_appointment_still_to_come_cannot_be_marked_missed(series, scheduler):
    with pytest.raises(ValidationError, match="not come yet"):
        session_mark_missed(session=sessions_of(series)[0], by=scheduler)
    assert sessions_of(series)[0].status == SessionStatus.SCHEDULED
