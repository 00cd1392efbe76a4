"""The reminder engine on a frozen clock: what is reminded, to whom, when, and only once."""

from __future__ import annotations

import datetime as dt
import smtplib
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse

from maintenance.models import (
    BoosterStage,
    JobRun,
    Notification,
    NotificationKind,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
)
from maintenance.reminders import dispatch_reminders, reminder_health, scan_reminders
from maintenance.services import booster_schedule
from patients.models import PatientStatus
from patients.phq9 import ITEM_FIELDS
from patients.services import phq9_acknowledge_safety, phq9_record
from sessions.scheduling import clinic_datetime
from sessions.services import series_create, session_complete, session_start
from tests.factories import MaintenancePlanFactory, UserFactory

NEW_YORK = ZoneInfo("America/New_York")
START = dt.date(2026, 1, 5)  # a Monday; six infusions end Thursday 22 January
LAST = dt.date(2026, 1, 22)


def at(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    return clinic_datetime(day, dt.time(hour, minute))


def day(n: int) -> dt.date:
    """``n`` days after the last induction infusion."""
    return LAST + dt.timedelta(days=n)


def answers(total_level: int, item_9: int = 0) -> dict[str, int]:
    return dict.fromkeys(ITEM_FIELDS[:8], total_level) | {"item_9": item_9}


@pytest.fixture
def clock():
    with time_machine.travel(at(START - dt.timedelta(days=3), 12), tick=False) as traveller:
        yield traveller


@pytest.fixture
def schedulers(scheduler):
    return [scheduler, UserFactory(username="jo_scheduler", role="scheduler")]


@pytest.fixture
def on_maintenance(clock, patient, protocol, scheduler, clinician, schedulers):
    """Patient A: induction completed on 22 January 2026, a 28-day plan (min 14, max 42)."""
    patient.primary_clinician = clinician
    patient.save()
    series = series_create(patient=patient, protocol=protocol, start_date=START, created_by=scheduler)
    for session in series.sessions.order_by("scheduled_at"):
        clock.move_to(session.scheduled_at + dt.timedelta(hours=2))
        session = session_start(session=session, by=clinician, weight_kg="70.0", started_at=session.scheduled_at)
        session_complete(session=session, by=clinician, ended_at=session.scheduled_at + dt.timedelta(minutes=40))
    MaintenancePlanFactory(patient=patient, protocol=protocol, trigger_phq9_threshold=10, trigger_phq9_rise=None)
    return patient


def scan_on(clock, when: dt.datetime) -> int:
    clock.move_to(when)
    return scan_reminders()


def booster_rows(**filters):
    return Reminder.objects.filter(kind=ReminderKind.BOOSTER_STAGE, **filters)


# --- Booster stages -------------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_is_reminded_before_the_booster_is_due_soon(on_maintenance, clock):
    assert scan_on(clock, at(day(20), 9)) == 0


@pytest.mark.django_db
def test_due_soon_reminds_the_patients_clinician_and_every_scheduler_in_app_and_by_email(
    on_maintenance, clock, clinician, schedulers
):
    created = scan_on(clock, at(day(21), 9))
    rows = booster_rows(stage=BoosterStage.DUE_SOON)
    assert created == rows.count() == 6  # 3 people x 2 channels
    assert {(r.recipient, r.channel) for r in rows} == {
        (user, channel) for user in [clinician, *schedulers] for channel in ReminderChannel
    }


@pytest.mark.django_db
def test_scanning_again_reminds_nobody_twice(on_maintenance, clock):
    scan_on(clock, at(day(21), 9))
    assert scan_on(clock, at(day(21), 9, 1)) == 0
    assert scan_on(clock, at(day(24), 9)) == 0  # still due soon
    assert booster_rows().count() == 6


@pytest.mark.django_db
def test_each_stage_is_reminded_once_as_it_comes(on_maintenance, clock):
    for n in (21, 22, 28, 29, 43, 44):
        scan_on(clock, at(day(n), 9))
    stages = list(booster_rows(channel=ReminderChannel.IN_APP).values_list("stage", "repeat").distinct())
    assert sorted(stages) == sorted([("due_soon", 0), ("due", 0), ("overdue", 0)])


@pytest.mark.django_db
def test_an_overdue_booster_is_reminded_again_every_7_days(on_maintenance, clock, settings):
    for n in (43, 49, 50, 57):
        scan_on(clock, at(day(n), 9))
    repeats = sorted(set(booster_rows(stage="overdue").values_list("repeat", flat=True)))
    assert repeats == [0, 1, 2]  # day 43 (1 day overdue), day 50 (8 days), day 57 (15 days)


@pytest.mark.django_db
def test_a_booked_booster_stops_the_reminders(on_maintenance, clock, scheduler):
    clock.move_to(at(day(20), 9))
    booster_schedule(patient=on_maintenance, scheduled_at=at(day(27)), by=scheduler)
    assert scan_on(clock, at(day(22), 9)) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["pause_plan", "discharge", "hold"])
def test_a_paused_plan_or_an_inactive_patient_gets_no_reminders(on_maintenance, clock, change):
    if change == "pause_plan":
        on_maintenance.maintenance_plan.is_active = False
        on_maintenance.maintenance_plan.save()
    else:
        on_maintenance.status = PatientStatus.DISCHARGED if change == "discharge" else PatientStatus.ON_HOLD
        on_maintenance.save()
    assert scan_on(clock, at(day(30), 9)) == 0


@pytest.mark.django_db
def test_a_new_infusion_starts_a_new_cycle_of_reminders(on_maintenance, clock, scheduler, clinician):
    scan_on(clock, at(day(28), 9))
    clock.move_to(at(day(28), 8))
    booster = booster_schedule(patient=on_maintenance, scheduled_at=at(day(29)), by=scheduler)
    clock.move_to(at(day(29), 12))
    booster = session_start(session=booster, by=clinician, weight_kg="70.0", started_at=booster.scheduled_at)
    session_complete(session=booster, by=clinician, ended_at=booster.scheduled_at + dt.timedelta(minutes=40))
    scan_on(clock, at(day(29 + 21), 9))
    cycles = set(booster_rows().values_list("subject_id", flat=True))
    assert len(cycles) == 2
    assert booster.pk in cycles


# --- Delivery ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dispatch_delivers_each_reminder_once(on_maintenance, clock, clinician):
    scan_on(clock, at(day(21), 9))
    assert dispatch_reminders() == 6
    assert dispatch_reminders() == 0
    assert not booster_rows(status=ReminderStatus.PENDING).exists()
    assert Notification.objects.filter(kind=NotificationKind.BOOSTER_STAGE).count() == 3
    assert len(mail.outbox) == 3
    note = Notification.objects.get(recipient=clinician)
    assert on_maintenance.full_name in note.title
    assert note.link == on_maintenance.get_absolute_url()


@pytest.mark.django_db
def test_emails_carry_no_patient_or_clinical_detail(on_maintenance, clock, settings):
    settings.CLINIC_NAME = "Riverside Wellness"
    scan_on(clock, at(day(21), 9))
    dispatch_reminders()
    for message in mail.outbox:
        text = f"{message.subject} {message.body}".lower()
        assert on_maintenance.last_name.lower() not in text
        for word in ("phq", "ketamine", "dose", "mg", "score", on_maintenance.mrn.lower()):
            assert word not in text


@pytest.mark.django_db
def test_booster_reminders_wait_for_the_clinics_morning(on_maintenance, clock):
    scan_on(clock, at(day(21), 6))
    clock.move_to(at(day(21), 7, 59))
    assert dispatch_reminders() == 0
    clock.move_to(at(day(21), 8, 1))
    assert dispatch_reminders() == 6


@pytest.mark.django_db
def test_the_morning_is_local_across_daylight_saving(clock, patient, protocol, scheduler, clinician, schedulers):
    """US clocks go forward on Sunday 8 March 2026: 08:00 is 13:00 UTC before, 12:00 UTC after."""
    patient.primary_clinician = clinician
    patient.save()
    series = series_create(patient=patient, protocol=protocol, start_date=START, created_by=scheduler)
    for session in series.sessions.order_by("scheduled_at"):
        clock.move_to(session.scheduled_at + dt.timedelta(hours=2))
        session = session_start(session=session, by=clinician, weight_kg="70.0", started_at=session.scheduled_at)
        session_complete(session=session, by=clinician, ended_at=session.scheduled_at + dt.timedelta(minutes=40))
    MaintenancePlanFactory(
        patient=patient, protocol=protocol, target_interval_days=42, min_interval_days=None, max_interval_days=None
    )
    # Due 5 March (42 days after 22 January): due soon from 26 February (EST), due on 5 March (EST),
    # overdue from 13 March (EDT, grace 7 days).
    for when in (at(dt.date(2026, 2, 26), 7), at(dt.date(2026, 3, 13), 7)):
        scan_on(clock, when)
    hours = {row.stage: row.send_after.astimezone(dt.UTC).hour for row in booster_rows(channel=ReminderChannel.IN_APP)}
    assert hours == {"due_soon": 13, "overdue": 12}


# --- Failures, retries and health ------------------------------------------------------------------


class FailingEmailBackend(BaseEmailBackend):
    def send_messages(self, messages):
        raise smtplib.SMTPServerDisconnected("mail server down")


@pytest.mark.django_db
def test_a_failed_email_is_retried_with_backoff_then_marked_failed(on_maintenance, clock, settings):
    settings.EMAIL_BACKEND = f"{__name__}.FailingEmailBackend"
    settings.CLINIC_REMINDER_MAX_ATTEMPTS = 3
    scan_on(clock, at(day(21), 9))
    dispatch_reminders()
    emails = booster_rows(channel=ReminderChannel.EMAIL)
    assert set(emails.values_list("status", "attempts")) == {(ReminderStatus.PENDING, 1)}
    assert all(row.send_after == at(day(21), 9, 1) for row in emails)  # 1 minute later
    assert "SMTPServerDisconnected" in emails.first().last_error
    # In-app delivery does not depend on email.
    assert set(booster_rows(channel=ReminderChannel.IN_APP).values_list("status", flat=True)) == {ReminderStatus.SENT}
    for minutes in (1, 3):  # then 2 minutes later
        clock.move_to(at(day(21), 9, minutes))
        dispatch_reminders()
    assert set(emails.values_list("status", "attempts")) == {(ReminderStatus.FAILED, 3)}
    assert reminder_health().failed == 3


@pytest.mark.django_db
def test_health_shows_whether_the_scan_is_alive(on_maintenance, clock, client, scheduler, settings):
    assert client.get("/health/").json()["reminder_scan"] == "stale"  # never ran
    scan_on(clock, at(day(21), 9))
    body = client.get("/health/").json()
    assert body["reminder_scan"] == "ok"
    assert body["reminders_pending"] == 6
    assert JobRun.objects.get(name="reminder-scan").last_success_at == at(day(21), 9)
    client.force_login(scheduler)
    assert "Reminders running" in client.get(reverse("maintenance:board")).text
    clock.move_to(at(day(21), 9) + dt.timedelta(minutes=settings.CLINIC_REMINDER_SCAN_STALE_MINUTES + 1))
    assert client.get("/health/").json()["reminder_scan"] == "stale"
    assert "Reminders are not running" in client.get(reverse("maintenance:board")).text


# --- Item-9 safety alerts ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_item_9_answer_alerts_every_clinician_at_once_and_emails_through_the_dispatcher(
    clock, patient, clinician, other_clinician
):
    assessment = phq9_record(patient=patient, answers=answers(1, item_9=2), entered_by=clinician)
    alerts = Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT)
    assert {n.recipient for n in alerts} == {clinician, other_clinician}
    pending = Reminder.objects.filter(kind=ReminderKind.SAFETY_ALERT, channel=ReminderChannel.EMAIL)
    assert set(pending.values_list("status", flat=True)) == {ReminderStatus.PENDING}
    assert dispatch_reminders() == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted([clinician.email, other_clinician.email])
    assert alerts.count() == 2  # the in-app alert was not delivered a second time
    assert assessment.pk in set(alerts.values_list("subject_id", flat=True))


@pytest.mark.django_db
def test_an_unacknowledged_alert_is_raised_again_until_acknowledged(clock, patient, clinician, settings):
    settings.CLINIC_SAFETY_REALERT_MINUTES = 30
    start = at(START, 10)
    clock.move_to(start)
    assessment = phq9_record(patient=patient, answers=answers(2, item_9=1), entered_by=clinician)
    dispatch_reminders()
    scan_on(clock, start + dt.timedelta(minutes=29))
    assert not Reminder.objects.filter(kind=ReminderKind.SAFETY_ALERT, repeat=1).exists()
    scan_on(clock, start + dt.timedelta(minutes=31))
    dispatch_reminders()
    assert Notification.objects.filter(title__contains="(reminder 1)").count() == 1
    scan_on(clock, start + dt.timedelta(minutes=61))  # repeat 2 is queued ...
    phq9_acknowledge_safety(assessment=assessment, by=clinician, action="Called; safe")
    assert dispatch_reminders() == 0  # ... and cancelled by the acknowledgement
    assert not Reminder.objects.filter(kind=ReminderKind.SAFETY_ALERT, status=ReminderStatus.PENDING).exists()
    assert scan_on(clock, start + dt.timedelta(minutes=200)) == 0
    assert not Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT, read_at__isnull=True).exists()


# --- Symptom triggers -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_phq9_meeting_the_trigger_tells_the_schedulers_at_once_with_the_scores(
    on_maintenance, clock, clinician, schedulers
):
    clock.move_to(at(day(10), 11))
    phq9_record(patient=on_maintenance, answers=answers(1), entered_by=clinician)  # 8: below the threshold
    assert not Notification.objects.filter(kind=NotificationKind.SYMPTOM_TRIGGER).exists()
    clock.move_to(at(day(12), 11))
    phq9_record(patient=on_maintenance, answers=answers(2), entered_by=clinician)  # 16
    notes = Notification.objects.filter(kind=NotificationKind.SYMPTOM_TRIGGER)
    assert {n.recipient for n in notes} == set(schedulers)
    assert "PHQ-9 16 is at or above 10" in notes.first().body
    assert "now due" in notes.first().body
    clock.move_to(at(day(13), 11))
    phq9_record(patient=on_maintenance, answers=answers(3), entered_by=clinician)  # 24: already fired
    assert notes.count() == 2


# --- Patients' appointment emails ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("agreed", [True, False])
def test_patients_who_agreed_get_a_minimal_email_before_a_booster(on_maintenance, clock, scheduler, settings, agreed):
    settings.CLINIC_NAME = "Riverside Wellness"
    on_maintenance.accepts_email_reminders = agreed
    on_maintenance.save()
    clock.move_to(at(day(20), 9))
    booster_schedule(patient=on_maintenance, scheduled_at=at(day(26)), by=scheduler)
    scan_on(clock, at(day(23), 7))  # three days before: not yet
    assert not Reminder.objects.filter(kind=ReminderKind.PATIENT_APPOINTMENT).exists()
    scan_on(clock, at(day(24), 9))  # two days before
    dispatch_reminders()
    sent = [m for m in mail.outbox if m.to == [on_maintenance.email]]  # the address on the record today
    assert len(sent) == (1 if agreed else 0)
    if agreed:
        assert "You have an upcoming appointment" in sent[0].body
        assert "log in" in sent[0].body.lower()
        for word in ("booster", "ketamine", "infusion", "phq"):
            assert word not in f"{sent[0].subject} {sent[0].body}".lower()


# --- Found in review ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_recipient_who_left_before_the_send_gets_nothing(on_maintenance, clock, schedulers):
    scan_on(clock, at(day(21), 6))
    leaver = schedulers[1]
    leaver.is_active = False
    leaver.save()
    clock.move_to(at(day(21), 8, 30))
    dispatch_reminders()
    assert not Notification.objects.filter(recipient=leaver).exists()
    assert leaver.email not in [m.to[0] for m in mail.outbox]
    assert set(booster_rows(recipient=leaver).values_list("status", flat=True)) == {ReminderStatus.CANCELLED}


@pytest.mark.django_db
def test_a_cancelled_booking_lets_the_held_reminder_go_out(on_maintenance, clock, scheduler):
    scan_on(clock, at(day(28), 6))
    clock.move_to(at(day(28), 7))
    booking = booster_schedule(patient=on_maintenance, scheduled_at=at(day(29)), by=scheduler)
    clock.move_to(at(day(28), 8, 30))
    assert dispatch_reminders() == 0  # held while a booster is booked
    from sessions.services import session_cancel

    session_cancel(session=booking, by=scheduler, reason="Unwell")
    clock.move_to(at(day(29), 8, 31))
    assert dispatch_reminders() == 6  # the due reminder goes out after all


@pytest.mark.django_db
def test_a_moved_appointment_is_reminded_again(on_maintenance, clock, scheduler):
    on_maintenance.accepts_email_reminders = True
    on_maintenance.save()
    clock.move_to(at(day(20), 9))
    booking = booster_schedule(patient=on_maintenance, scheduled_at=at(day(26)), by=scheduler)
    scan_on(clock, at(day(24), 9))
    from sessions.services import session_reschedule

    session_reschedule(session=booking, scheduled_at=at(day(32)), by=scheduler)
    scan_on(clock, at(day(30), 9))
    assert Reminder.objects.filter(kind=ReminderKind.PATIENT_APPOINTMENT).count() == 2
