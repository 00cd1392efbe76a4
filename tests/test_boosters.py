"""Maintenance plans: booster due status, symptom triggers and booking boosters."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from maintenance.models import BoosterAppointment, BoosterStage, MaintenancePlan
from maintenance.selectors import booster_status
from maintenance.services import booster_schedule, maintenance_plan_save
from sessions.models import InfusionSession, SessionKind, SessionStatus
from sessions.scheduling import clinic_datetime
from sessions.services import series_create, session_complete, session_start
from tests.factories import MaintenancePlanFactory, PHQ9Factory

NEW_YORK = ZoneInfo("America/New_York")
LAST = dt.date(2026, 4, 2)  # a Thursday


def plan(**fields) -> MaintenancePlan:
    values = {"target_interval_days": 28, "min_interval_days": 14, "max_interval_days": 42} | fields
    return MaintenancePlan(**values)


def stage_on(p: MaintenancePlan, days_after_last: int, **kwargs) -> BoosterStage:
    return p.due_status(last_infusion_on=LAST, today=LAST + dt.timedelta(days=days_after_last), **kwargs).stage


# --- Due status (pure) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_after_last", "stage"),
    [
        (0, BoosterStage.NOT_YET_DUE),
        (20, BoosterStage.NOT_YET_DUE),  # 8 days before due
        (21, BoosterStage.DUE_SOON),  # 7 days before due: the lead time starts
        (27, BoosterStage.DUE_SOON),
        (28, BoosterStage.DUE),  # target interval reached
        (42, BoosterStage.DUE),  # last day before the maximum is passed
        (43, BoosterStage.OVERDUE),
        (400, BoosterStage.OVERDUE),
    ],
)
def test_the_stage_follows_the_plan_and_the_last_infusion(days_after_last, stage):
    assert stage_on(plan(), days_after_last) == stage


def test_the_due_status_reports_its_dates():
    due = plan().due_status(last_infusion_on=LAST, today=LAST + dt.timedelta(days=25))
    assert due.due_on == LAST + dt.timedelta(days=28)
    assert due.due_until == LAST + dt.timedelta(days=42)
    assert due.days_until_due == 3


def test_the_lead_time_is_a_setting(settings):
    settings.CLINIC_BOOSTER_LEAD_DAYS = 3
    assert stage_on(plan(), 24) == BoosterStage.NOT_YET_DUE
    assert stage_on(plan(), 25) == BoosterStage.DUE_SOON


def test_without_a_maximum_a_booster_is_overdue_after_the_grace_setting(settings):
    settings.CLINIC_BOOSTER_OVERDUE_GRACE_DAYS = 5
    no_max = plan(max_interval_days=None)
    assert stage_on(no_max, 33) == BoosterStage.DUE
    assert stage_on(no_max, 34) == BoosterStage.OVERDUE


def test_a_symptom_trigger_brings_the_booster_forward_but_not_before_the_minimum():
    p = plan()
    early = LAST + dt.timedelta(days=5)
    due = p.due_status(last_infusion_on=LAST, today=early, triggered_on=early)
    assert due.due_on == LAST + dt.timedelta(days=14)  # the minimum interval
    later = LAST + dt.timedelta(days=18)
    assert p.due_status(last_infusion_on=LAST, today=later, triggered_on=later).stage == BoosterStage.DUE


def test_a_trigger_never_pushes_the_booster_later():
    p = plan()
    late = LAST + dt.timedelta(days=35)
    assert p.due_status(last_infusion_on=LAST, today=late, triggered_on=late).due_on == LAST + dt.timedelta(days=28)


@pytest.mark.parametrize(
    ("total", "low", "fires"),
    [(10, None, True), (9, None, False), (9, 4, True), (8, 4, False), (12, 3, True)],
)
def test_triggers_fire_at_the_threshold_or_on_a_rise_over_the_post_induction_low(total, low, fires):
    p = plan(trigger_phq9_threshold=10, trigger_phq9_rise=5)
    assert (p.trigger_reason(total=total, post_induction_low=low) is not None) is fires


def test_a_trigger_left_empty_is_off():
    p = plan(trigger_phq9_threshold=None, trigger_phq9_rise=None)
    assert p.trigger_reason(total=27, post_induction_low=0) is None


@pytest.mark.django_db
def test_new_plans_take_the_clinics_default_triggers(patient, protocol, settings):
    settings.CLINIC_TRIGGER_PHQ9_THRESHOLD = 12
    created = MaintenancePlanFactory(patient=patient, protocol=protocol)
    assert created.trigger_phq9_threshold == 12
    assert created.trigger_phq9_rise == 5


# --- Plans: bad input -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target_interval_days": 28, "min_interval_days": 35}, "min_interval_days"),
        ({"target_interval_days": 28, "max_interval_days": 21}, "max_interval_days"),
        ({"target_interval_days": 3}, "target_interval_days"),
        ({"target_interval_days": 28, "trigger_phq9_threshold": 30}, "trigger_phq9_threshold"),
    ],
)
def test_an_inconsistent_plan_is_refused_and_nothing_is_saved(patient, protocol, scheduler, fields, field):
    with pytest.raises(ValidationError) as error:
        maintenance_plan_save(patient=patient, by=scheduler, protocol=protocol, **fields)
    assert field in error.value.message_dict
    assert not MaintenancePlan.objects.exists()


@pytest.mark.django_db
def test_saving_a_plan_twice_updates_the_one_plan(patient, protocol, scheduler):
    maintenance_plan_save(patient=patient, by=scheduler, protocol=protocol, target_interval_days=28)
    maintenance_plan_save(patient=patient, by=scheduler, protocol=protocol, target_interval_days=42)
    assert MaintenancePlan.objects.get().target_interval_days == 42


@pytest.mark.django_db
def test_a_patient_account_cannot_change_a_plan(patient, protocol):
    with pytest.raises(PermissionDenied):
        maintenance_plan_save(patient=patient, by=patient.user, protocol=protocol, target_interval_days=28)


# --- Booster status from the records -------------------------------------------------------


@pytest.fixture
def completed_induction(patient, protocol, scheduler, clinician):
    """Patient A's six induction infusions, given Mon 16 March - Thu 2 April 2026."""
    with time_machine.travel(dt.datetime(2026, 3, 13, 12, tzinfo=NEW_YORK), tick=False) as clock:
        series = series_create(
            patient=patient, protocol=protocol, start_date=dt.date(2026, 3, 16), created_by=scheduler
        )
        for session in series.sessions.order_by("scheduled_at"):
            start = session.scheduled_at
            clock.move_to(start + dt.timedelta(hours=1))
            session = session_start(session=session, by=clinician, weight_kg="72.5", started_at=start)
            session_complete(session=session, by=clinician, ended_at=start + dt.timedelta(minutes=40))
    return series


@pytest.mark.django_db
def test_boosters_do_not_apply_without_a_plan(completed_induction, patient):
    assert booster_status(patient=patient, today=LAST + dt.timedelta(days=30)) is None


@pytest.mark.django_db
def test_boosters_do_not_apply_while_the_induction_is_in_progress(patient, protocol, scheduler, clinician):
    with time_machine.travel(dt.datetime(2026, 3, 13, 12, tzinfo=NEW_YORK), tick=False):
        series_create(patient=patient, protocol=protocol, start_date=dt.date(2026, 3, 16), created_by=scheduler)
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    assert booster_status(patient=patient, today=dt.date(2026, 5, 1)) is None


@pytest.mark.django_db
def test_the_booster_is_due_from_the_last_induction_infusion(completed_induction, patient, protocol):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    status = booster_status(patient=patient, today=LAST + dt.timedelta(days=22))
    assert status.last_infusion.scheduled_on == LAST
    assert status.due.due_on == LAST + dt.timedelta(days=28)
    assert status.due.stage == BoosterStage.DUE_SOON
    assert status.trigger is None


@pytest.mark.django_db
def test_a_paused_plan_has_no_booster_status(completed_induction, patient, protocol):
    MaintenancePlanFactory(patient=patient, protocol=protocol, is_active=False)
    assert booster_status(patient=patient, today=LAST + dt.timedelta(days=30)) is None


@pytest.mark.django_db
def test_a_phq9_at_the_threshold_brings_the_booster_forward(completed_induction, patient, protocol):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    PHQ9Factory(patient=patient, level=0, taken_at=clinic_datetime(LAST + dt.timedelta(days=7), dt.time(10)))
    worse = PHQ9Factory(patient=patient, level=2, taken_at=clinic_datetime(LAST + dt.timedelta(days=15), dt.time(10)))
    status = booster_status(patient=patient, today=LAST + dt.timedelta(days=15))
    assert status.trigger.assessment == worse
    assert "16" in status.trigger.reason
    assert status.due.due_on == LAST + dt.timedelta(days=15)
    assert status.due.stage == BoosterStage.DUE


@pytest.mark.django_db
def test_a_rise_over_the_post_induction_low_brings_the_booster_forward(completed_induction, patient, protocol):
    MaintenancePlanFactory(patient=patient, protocol=protocol, trigger_phq9_threshold=None)
    PHQ9Factory(patient=patient, level=0, item_1=2, taken_at=clinic_datetime(LAST + dt.timedelta(days=3), dt.time(10)))
    rise = PHQ9Factory(patient=patient, level=1, taken_at=clinic_datetime(LAST + dt.timedelta(days=16), dt.time(10)))
    status = booster_status(patient=patient, today=LAST + dt.timedelta(days=16))
    assert status.trigger.assessment == rise  # 8 is 6 points above the low of 2
    assert "above the post-induction low of 2" in status.trigger.reason


@pytest.mark.django_db
def test_a_booster_given_resets_the_cycle(completed_induction, patient, protocol, scheduler, clinician):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    booster_day = LAST + dt.timedelta(days=28)  # Thursday 30 April
    with time_machine.travel(clinic_datetime(booster_day, dt.time(8)), tick=False) as clock:
        booster = booster_schedule(
            patient=patient, scheduled_at=clinic_datetime(booster_day, dt.time(10)), by=scheduler
        )
        clock.move_to(clinic_datetime(booster_day, dt.time(11)))
        booster = session_start(session=booster, by=clinician, started_at=booster.scheduled_at)
        session_complete(session=booster, by=clinician, ended_at=booster.scheduled_at + dt.timedelta(minutes=40))
    status = booster_status(patient=patient, today=booster_day + dt.timedelta(days=1))
    assert status.last_infusion.pk == booster.pk
    assert status.due.due_on == booster_day + dt.timedelta(days=28)
    assert status.due.stage == BoosterStage.NOT_YET_DUE


# --- Booking boosters ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_booster_is_booked_with_the_plans_route_and_dose(completed_induction, patient, protocol, scheduler):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    day = LAST + dt.timedelta(days=26)  # Tuesday 28 April
    with time_machine.travel(clinic_datetime(LAST + dt.timedelta(days=20), dt.time(9)), tick=False):
        booster = booster_schedule(patient=patient, scheduled_at=clinic_datetime(day, dt.time(10)), by=scheduler)
        status = booster_status(patient=patient)
    assert booster.kind == SessionKind.BOOSTER
    assert booster.series is None
    assert (booster.route, booster.dose_mg_per_kg) == (protocol.route, protocol.dose)
    assert BoosterAppointment.objects.get() == InfusionSession.objects.get(kind=SessionKind.BOOSTER)
    assert status.next_appointment.pk == booster.pk


@pytest.mark.django_db
def test_a_booster_needs_a_plan(completed_induction, patient, scheduler):
    with (
        time_machine.travel(clinic_datetime(LAST + dt.timedelta(days=20), dt.time(9)), tick=False),
        pytest.raises(ValidationError, match="no maintenance plan"),
    ):
        booster_schedule(
            patient=patient, scheduled_at=clinic_datetime(LAST + dt.timedelta(days=26), dt.time(10)), by=scheduler
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("days_after_last", "message"),
    [(23, "closed"), (-1, "past"), (0, "past")],
)
def test_a_booster_is_refused_on_a_closed_or_past_day(
    completed_induction, patient, protocol, scheduler, days_after_last, message
):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    with (
        time_machine.travel(clinic_datetime(LAST + dt.timedelta(days=1), dt.time(9)), tick=False),
        pytest.raises(ValidationError, match=message),
    ):
        booster_schedule(
            patient=patient,
            scheduled_at=clinic_datetime(LAST + dt.timedelta(days=days_after_last), dt.time(10)),
            by=scheduler,
        )
    assert not BoosterAppointment.objects.exists()


@pytest.mark.django_db
def test_two_boosters_on_one_day_are_refused(completed_induction, patient, protocol, scheduler):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    day = LAST + dt.timedelta(days=26)
    with time_machine.travel(clinic_datetime(LAST + dt.timedelta(days=20), dt.time(9)), tick=False):
        booster_schedule(patient=patient, scheduled_at=clinic_datetime(day, dt.time(10)), by=scheduler)
        with pytest.raises(ValidationError, match="already has an infusion"):
            booster_schedule(patient=patient, scheduled_at=clinic_datetime(day, dt.time(15)), by=scheduler)
    assert BoosterAppointment.objects.filter(status=SessionStatus.SCHEDULED).count() == 1


@pytest.mark.django_db
def test_a_patient_account_cannot_book_a_booster(completed_induction, patient, protocol):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    with pytest.raises(PermissionDenied):
        booster_schedule(
            patient=patient, scheduled_at=clinic_datetime(LAST + dt.timedelta(days=26), dt.time(10)), by=patient.user
        )
