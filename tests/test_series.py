"""Induction series: materialised sessions, clinic-day spacing, rescheduling and gaps."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from patients.models import PatientStatus
from sessions.models import ClosedDay, InductionSeries, InfusionSession, SessionKind, SessionStatus
from sessions.scheduling import MIN_SPACING_DAYS, clinic_datetime, is_open_day, plan_series_dates, series_gaps
from sessions.services import (
    series_create,
    series_discontinue,
    series_gap_report,
    series_plan,
    series_schedule_makeup,
    session_cancel,
    session_mark_missed,
    session_reschedule,
)
from tests.factories import PatientFactory, ProtocolFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 3, 2)  # the week before US daylight saving starts (8 March 2026)
FROZEN = dt.datetime(2026, 2, 27, 12, 0, tzinfo=NEW_YORK)  # the Friday before


def weekdays(dates: list[dt.date]) -> list[str]:
    return [d.strftime("%a") for d in dates]


def never(day: dt.date) -> bool:
    return False


def closed_weekend(day: dt.date) -> bool:
    return day.weekday() >= 5


# --- Planning (pure) ----------------------------------------------------------------


def test_twice_a_week_falls_on_non_consecutive_days_mon_thu():
    dates = plan_series_dates(start=MONDAY, count=6, per_week=2, unavailable=closed_weekend)
    assert weekdays(dates) == ["Mon", "Thu", "Mon", "Thu", "Mon", "Thu"]
    assert dates[-1] - dates[0] == dt.timedelta(days=17)


def test_twice_a_week_from_a_tuesday_runs_tue_fri_then_mon_thu():
    dates = plan_series_dates(start=MONDAY + dt.timedelta(days=1), count=4, per_week=2, unavailable=closed_weekend)
    assert weekdays(dates) == ["Tue", "Fri", "Mon", "Thu"]


def test_three_a_week_falls_on_alternate_days_mon_wed_fri():
    dates = plan_series_dates(start=MONDAY, count=6, per_week=3, unavailable=closed_weekend)
    assert weekdays(dates) == ["Mon", "Wed", "Fri", "Mon", "Wed", "Fri"]


def test_a_start_on_a_closed_day_moves_to_the_next_open_day():
    saturday = MONDAY - dt.timedelta(days=2)
    dates = plan_series_dates(start=saturday, count=2, per_week=2, unavailable=closed_weekend)
    assert dates[0] == MONDAY


def test_closed_dates_are_skipped():
    holiday = MONDAY + dt.timedelta(days=3)  # the first Thursday
    dates = plan_series_dates(
        start=MONDAY, count=4, per_week=2, unavailable=lambda d: closed_weekend(d) or d == holiday
    )
    assert holiday not in dates
    assert dates[1] == holiday + dt.timedelta(days=1)  # Friday instead


def test_a_weekend_open_clinic_still_gives_at_most_two_a_week():
    dates = plan_series_dates(start=MONDAY, count=6, per_week=2, unavailable=never)
    per_week: dict[tuple[int, int], int] = {}
    for day in dates:
        per_week[day.isocalendar()[:2]] = per_week.get(day.isocalendar()[:2], 0) + 1
    assert max(per_week.values()) == 2


@pytest.mark.parametrize("per_week", [1, 4, 7])
def test_only_two_or_three_a_week_are_planned(per_week):
    with pytest.raises(ValidationError):
        plan_series_dates(start=MONDAY, count=6, per_week=per_week, unavailable=never)


def test_planning_gives_up_when_the_clinic_is_never_open():
    with pytest.raises(ValidationError, match="No open clinic days"):
        plan_series_dates(start=MONDAY, count=2, per_week=2, unavailable=lambda d: True)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    start=st.dates(dt.date(2025, 1, 1), dt.date(2030, 12, 31)),
    count=st.sampled_from([4, 6, 8]),
    per_week=st.sampled_from([2, 3]),
    closed_weekdays=st.sets(st.integers(0, 6), max_size=3),
    holidays=st.sets(st.integers(0, 60), max_size=6),
)
def test_every_plan_keeps_the_spacing_rules(start, count, per_week, closed_weekdays, holidays):
    closed = {start + dt.timedelta(days=n) for n in holidays}

    def unavailable(day):
        return day.weekday() in closed_weekdays or day in closed

    dates = plan_series_dates(start=start, count=count, per_week=per_week, unavailable=unavailable)
    assert len(dates) == count
    assert len(set(dates)) == count  # never two on one day
    assert dates == sorted(dates)
    assert not any(unavailable(day) for day in dates)
    assert all((b - a).days >= MIN_SPACING_DAYS[per_week] for a, b in pairwise(dates))
    weeks = [day.isocalendar()[:2] for day in dates]
    assert max(weeks.count(week) for week in set(weeks)) <= per_week


def test_a_gap_over_7_days_is_reported():
    dates = [MONDAY, MONDAY + dt.timedelta(days=3), MONDAY + dt.timedelta(days=11)]
    gaps = series_gaps(dates)
    assert len(gaps) == 1
    assert gaps[0].days == 8
    assert "8 days" in str(gaps[0])
    assert series_gaps([MONDAY, MONDAY + dt.timedelta(days=7)]) == []


def test_the_gap_limit_is_a_setting(settings):
    settings.CLINIC_SERIES_MAX_GAP_DAYS = 4
    assert len(series_gaps([MONDAY, MONDAY + dt.timedelta(days=5)])) == 1


def test_closed_weekdays_are_a_setting(settings):
    settings.CLINIC_CLOSED_WEEKDAYS = [0]  # closed on Mondays only
    assert not is_open_day(MONDAY)
    assert is_open_day(MONDAY - dt.timedelta(days=1))  # Sunday


# --- Creating a series ------------------------------------------------------------


@pytest.fixture
def frozen():
    with time_machine.travel(FROZEN, tick=False) as traveller:
        yield traveller


@pytest.mark.django_db
def test_a_series_materialises_one_scheduled_session_per_infusion(frozen, patient, protocol, scheduler):
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    sessions = list(series.sessions.order_by("scheduled_at"))
    assert len(sessions) == 6
    assert weekdays([s.scheduled_on for s in sessions]) == ["Mon", "Thu"] * 3
    assert {s.status for s in sessions} == {SessionStatus.SCHEDULED}
    assert {s.kind for s in sessions} == {SessionKind.INDUCTION}
    assert {(s.route, s.drug, s.dose_mg_per_kg, s.dose_mg) for s in sessions} == {
        (protocol.route, protocol.drug, protocol.dose, None)
    }
    assert series.planned_infusions == 6
    assert series.is_in_progress


@pytest.mark.django_db
def test_session_times_are_stored_in_utc_and_keep_the_clinic_hour_across_daylight_saving(
    frozen, patient, protocol, scheduler
):
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    first, *_, last = series.sessions.order_by("scheduled_at")
    assert first.scheduled_at.astimezone(dt.UTC).hour == 14  # 09:00 EST
    assert last.scheduled_at.astimezone(dt.UTC).hour == 13  # 09:00 EDT
    assert {s.scheduled_at.astimezone(NEW_YORK).hour for s in series.sessions.all()} == {9}


@pytest.mark.django_db
def test_the_clinic_time_zone_is_a_setting(frozen, patient, protocol, scheduler, settings):
    settings.TIME_ZONE = "Europe/London"
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    assert series.sessions.order_by("scheduled_at").first().scheduled_at.astimezone(dt.UTC).hour == 9


@pytest.mark.django_db
def test_a_protocol_sets_the_count_and_frequency(frozen, patient, scheduler):
    protocol = ProtocolFactory(name="IV 8 x three weekly", infusion_count=8, infusions_per_week=3)
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    days = [s.scheduled_on for s in series.sessions.order_by("scheduled_at")]
    assert len(days) == 8
    assert weekdays(days) == ["Mon", "Wed", "Fri"] * 2 + ["Mon", "Wed"]


@pytest.mark.django_db
def test_a_fixed_dose_protocol_plans_the_dose_in_mg(frozen, patient, scheduler):
    protocol = ProtocolFactory(
        name="Esketamine 56 mg", route="intranasal", drug="esketamine", dose_unit="mg", dose=56, infusion_count=4
    )
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    assert {(s.dose_mg, s.dose_mg_per_kg) for s in series.sessions.all()} == {(56, None)}


@pytest.mark.django_db
def test_clinic_closed_days_in_the_database_are_skipped(frozen, patient, protocol, scheduler):
    holiday = ClosedDay.objects.create(date=MONDAY + dt.timedelta(days=7), reason="Staff training")
    series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    days = [s.scheduled_on for s in series.sessions.order_by("scheduled_at")]
    assert holiday.date not in days
    assert days[2] == holiday.date + dt.timedelta(days=1)


@pytest.mark.django_db
def test_a_series_avoids_days_the_patient_is_already_booked(frozen, patient, protocol, scheduler):
    first = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    booked = first.sessions.order_by("scheduled_at").first()
    series_discontinue(series=first, by=scheduler, reason="Restarting on a new protocol")
    # The discontinued series' cancelled sessions free their days; a completed one would not.
    plan = series_plan(patient=patient, protocol=protocol, start_date=MONDAY)
    assert plan.dates[0] == booked.scheduled_on


@pytest.mark.django_db
def test_the_preview_reports_gaps_before_anything_is_saved(frozen, patient, protocol):
    for offset in range(3, 12):  # closed from the first Thursday to the next Friday
        ClosedDay.objects.create(date=MONDAY + dt.timedelta(days=offset))
    plan = series_plan(patient=patient, protocol=protocol, start_date=MONDAY)
    assert plan.gaps
    assert not InductionSeries.objects.exists()


@pytest.mark.django_db
def test_a_second_series_cannot_start_while_one_is_in_progress(frozen, patient, protocol, scheduler):
    series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    with pytest.raises(ValidationError) as error:
        series_create(
            patient=patient, protocol=protocol, start_date=MONDAY + dt.timedelta(days=30), created_by=scheduler
        )
    assert "still in progress" in str(error.value)
    assert InductionSeries.objects.count() == 1
    assert InfusionSession.objects.count() == 6


@pytest.mark.django_db
def test_a_series_cannot_start_in_the_past(frozen, patient, protocol, scheduler):
    with pytest.raises(ValidationError) as error:
        series_create(
            patient=patient, protocol=protocol, start_date=MONDAY - dt.timedelta(days=14), created_by=scheduler
        )
    assert "start_date" in error.value.message_dict
    assert not InfusionSession.objects.exists()


@pytest.mark.django_db
def test_an_inactive_protocol_cannot_start_a_series(frozen, patient, scheduler):
    retired = ProtocolFactory(name="Retired", is_active=False)
    with pytest.raises(ValidationError) as error:
        series_create(patient=patient, protocol=retired, start_date=MONDAY, created_by=scheduler)
    assert "protocol" in error.value.message_dict


@pytest.mark.django_db
def test_a_discharged_patient_cannot_start_a_series(frozen, protocol, scheduler):
    patient = PatientFactory(status=PatientStatus.DISCHARGED)
    with pytest.raises(ValidationError):
        series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    assert not InfusionSession.objects.exists()


@pytest.mark.django_db
def test_starting_a_series_makes_an_intake_patient_active(frozen, protocol, scheduler):
    patient = PatientFactory(status=PatientStatus.INTAKE)
    series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    patient.refresh_from_db()
    assert patient.status == PatientStatus.ACTIVE


@pytest.mark.django_db
def test_a_patient_account_cannot_start_a_series(frozen, patient, protocol):
    with pytest.raises(PermissionDenied):
        series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=patient.user)
    assert not InductionSeries.objects.exists()


# --- Rescheduling -----------------------------------------------------------------


@pytest.fixture
def series(frozen, patient, protocol, scheduler):
    return series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return clinic_datetime(day, dt.time(hour))


@pytest.mark.django_db
def test_rescheduling_one_session_keeps_the_others(series, scheduler):
    sessions = list(series.sessions.order_by("scheduled_at"))
    before = {s.pk: s.scheduled_at for s in sessions[1:]}
    session_reschedule(session=sessions[0], scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)
    sessions[0].refresh_from_db()
    assert sessions[0].scheduled_on == MONDAY + dt.timedelta(days=1)
    assert {s.pk: s.scheduled_at for s in series.sessions.exclude(pk=sessions[0].pk)} == before


@pytest.mark.django_db
def test_rescheduling_onto_a_closed_day_is_refused(series, scheduler):
    session = series.sessions.order_by("scheduled_at").first()
    original = session.scheduled_at
    with pytest.raises(ValidationError, match="closed"):
        session_reschedule(session=session, scheduled_at=at(MONDAY - dt.timedelta(days=1)), by=scheduler)
    session.refresh_from_db()
    assert session.scheduled_at == original


@pytest.mark.django_db
def test_rescheduling_onto_a_closed_date_is_refused(series, scheduler):
    ClosedDay.objects.create(date=MONDAY + dt.timedelta(days=1), reason="Holiday")
    session = series.sessions.order_by("scheduled_at").first()
    with pytest.raises(ValidationError, match="closed"):
        session_reschedule(session=session, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)


@pytest.mark.django_db
def test_rescheduling_onto_another_infusion_day_of_the_patient_is_refused(series, scheduler):
    first, second = series.sessions.order_by("scheduled_at")[:2]
    with pytest.raises(ValidationError, match="already has an infusion"):
        session_reschedule(session=first, scheduled_at=at(second.scheduled_on, 15), by=scheduler)
    first.refresh_from_db()
    assert first.scheduled_on == MONDAY


@pytest.mark.django_db
def test_the_database_refuses_two_infusions_of_a_patient_on_one_day(series):
    first, second = series.sessions.order_by("scheduled_at")[:2]
    with pytest.raises(IntegrityError), transaction.atomic():
        InfusionSession.objects.filter(pk=second.pk).update(scheduled_on=first.scheduled_on)


@pytest.mark.django_db
def test_another_patient_may_have_an_infusion_the_same_day(series, protocol, scheduler):
    other = PatientFactory()
    other_series = series_create(patient=other, protocol=protocol, start_date=MONDAY, created_by=scheduler)
    assert other_series.sessions.order_by("scheduled_at").first().scheduled_on == MONDAY


@pytest.mark.django_db
def test_rescheduling_reports_a_gap_over_7_days(series, scheduler):
    sessions = list(series.sessions.order_by("scheduled_at"))
    # The last infusion (Thu 19 March) moves to Mon 30 March: 14 days after Mon 16.
    gaps = session_reschedule(session=sessions[-1], scheduled_at=at(MONDAY + dt.timedelta(days=28)), by=scheduler)
    assert [g.days for g in gaps] == [14]
    assert series_gap_report(series) == gaps


@pytest.mark.django_db
def test_only_a_scheduled_session_can_be_moved(series, scheduler):
    session = series.sessions.order_by("scheduled_at").first()
    session_cancel(session=session, by=scheduler, reason="Patient unwell")
    with pytest.raises(ValidationError, match="Only an infusion that has not started"):
        session_reschedule(session=session, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)


@pytest.mark.django_db
def test_a_naive_time_is_refused(series, scheduler):
    session = series.sessions.order_by("scheduled_at").first()
    with pytest.raises(ValidationError, match="time zone"):
        session_reschedule(session=session, scheduled_at=dt.datetime(2026, 3, 3, 10), by=scheduler)


@pytest.mark.django_db
def test_a_patient_account_cannot_reschedule(series, patient):
    session = series.sessions.order_by("scheduled_at").first()
    with pytest.raises(PermissionDenied):
        session_reschedule(session=session, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=patient.user)


# --- Missed sessions and make-ups ---------------------------------------------------


@pytest.mark.django_db
def test_a_missed_session_is_kept_and_a_make_up_is_booked(series, scheduler, frozen):
    first = series.sessions.order_by("scheduled_at").first()
    frozen.move_to(at(MONDAY, 16))  # the first infusion's day; the patient did not come
    session_mark_missed(session=first, by=scheduler, reason="No show")
    makeup = series_schedule_makeup(series=series, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)
    assert series.sessions.count() == 7
    assert series.sessions.filter(status=SessionStatus.MISSED).get() == first
    assert makeup.status == SessionStatus.SCHEDULED
    assert makeup.dose_mg_per_kg == first.dose_mg_per_kg


@pytest.mark.django_db
def test_a_make_up_cannot_exceed_the_planned_count(series, scheduler):
    with pytest.raises(ValidationError, match="already booked"):
        series_schedule_makeup(series=series, scheduled_at=at(MONDAY + dt.timedelta(days=1)), by=scheduler)
    assert series.sessions.count() == 6


@pytest.mark.django_db
def test_discontinuing_a_series_cancels_what_remains(series, scheduler):
    series_discontinue(series=series, by=scheduler, reason="Patient moved away")
    assert set(series.sessions.values_list("status", flat=True)) == {SessionStatus.CANCELLED}
    assert not InductionSeries.objects.with_progress().get(pk=series.pk).is_in_progress


@pytest.mark.django_db
def test_discontinuing_needs_a_reason(series, scheduler):
    with pytest.raises(ValidationError):
        series_discontinue(series=series, by=scheduler, reason="")
    series.refresh_from_db()
    assert series.discontinued_at is None
