"""A scheduler keeps boosters on time from the board, and clears the inbox, in a real browser."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from maintenance.models import BoosterAppointment, Notification, NotificationKind
from maintenance.selectors import suggest_booster_day
from sessions.scheduling import clinic_date
from sessions.services import series_create, session_complete, session_start
from tests.browser import log_in
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory, UserFactory

PASSWORD = "correct horse battery staple"
#: The board itself (not a page whose ?next= points at the board).
BOARD = re.compile(r"^https?://[^/?]+/maintenance/boosters/$")

# The live server reads in its own thread, so these tests commit (and the database is
# flushed after each; factories re-create the role groups the migration made).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def completed_induction(patient, protocol, *, start: dt.date, scheduler, clinician) -> None:
    """Six infusions given as the services record them, entered in the past."""
    with time_machine.travel(timezone.now() - dt.timedelta(days=90), tick=False) as clock:
        series = series_create(
            patient=patient, protocol=protocol, start_date=start, created_by=scheduler, allow_past=True
        )
        for session in series.sessions.order_by("scheduled_at"):
            begin = session.scheduled_at
            clock.move_to(begin + dt.timedelta(hours=1))
            session = session_start(session=session, by=clinician, weight_kg="72.5", started_at=begin)
            session_complete(session=session, by=clinician, ended_at=begin + dt.timedelta(minutes=40))


@pytest.fixture
def cast():
    scheduler = UserFactory(username="sam_scheduler", first_name="Sam", last_name="Reyes", role="scheduler")
    clinician = UserFactory(username="dr_lee", role="clinician")
    protocol = ProtocolFactory()
    today = timezone.localdate()

    # Jordan Avery: induction ended about seven weeks ago, a plan of 28 (14-42) days: overdue.
    avery = PatientFactory(mrn="KC-30001", first_name="Jordan", last_name="Avery")
    completed_induction(avery, protocol, start=today - dt.timedelta(days=70), scheduler=scheduler, clinician=clinician)
    MaintenancePlanFactory(patient=avery, protocol=protocol)
    PHQ9Factory(patient=avery, level=2, taken_at=timezone.now() - dt.timedelta(days=20))

    # Casey Brooks: induction ended recently: not yet due. Dana Cho: finished, no plan yet.
    brooks = PatientFactory(mrn="KC-30002", first_name="Casey", last_name="Brooks")
    completed_induction(brooks, protocol, start=today - dt.timedelta(days=25), scheduler=scheduler, clinician=clinician)
    MaintenancePlanFactory(patient=brooks, protocol=protocol, target_interval_days=42, max_interval_days=56)
    cho = PatientFactory(mrn="KC-30003", first_name="Dana", last_name="Cho")
    completed_induction(cho, protocol, start=today - dt.timedelta(days=40), scheduler=scheduler, clinician=clinician)
    return {"scheduler": scheduler, "avery": avery, "brooks": brooks, "cho": cho, "today": today}


def test_a_scheduler_books_and_moves_an_overdue_booster_from_the_board(page, live_server, screenshot, cast):
    today = cast["today"]
    log_in(page, live_server, "sam_scheduler")
    page.wait_for_url(BOARD)  # a scheduler's home is the board

    overdue = page.locator("section", has=page.get_by_role("heading", name=re.compile("Overdue")))
    row = overdue.get_by_role("row", name=re.compile("Avery, Jordan"))
    assert "Overdue" in row.inner_text()
    assert "is at or above 10" in row.inner_text()  # the symptom trigger that fired
    assert "None booked" in row.inner_text()
    needs_plan = page.locator("section", has=page.get_by_role("heading", name="Needs a maintenance plan"))
    assert needs_plan.get_by_role("link", name="Create plan for Dana Cho").is_visible()
    screenshot("boosters-board")
    screenshot("boosters-board", width=390)
    screenshot("boosters-board")

    row.get_by_role("link", name="Schedule booster for Jordan Avery").click()
    page.wait_for_url("**/boosters/new/**")
    suggested = suggest_booster_day(due_on=today, today=today)
    assert page.get_by_label("Date").input_value() == suggested.isoformat()
    assert page.get_by_label("Time").input_value() == "10:00"
    screenshot("boosters-new")
    screenshot("boosters-new", width=390)
    screenshot("boosters-new")

    # A Saturday is refused next to the date field, and what was typed stays.
    saturday = today + dt.timedelta(days=(5 - today.weekday()) % 7 or 7)
    page.get_by_label("Date").fill(saturday.isoformat())
    page.get_by_label("Time").fill("11:30")
    page.get_by_role("button", name="Book booster").click()
    assert page.locator(".field--invalid").get_by_text("The clinic is closed").is_visible()
    assert page.get_by_label("Time").input_value() == "11:30"
    assert not BoosterAppointment.objects.exists()
    screenshot("boosters-new-error", width=390)
    screenshot("boosters-new-error")

    page.get_by_label("Date").fill(suggested.isoformat())
    page.get_by_role("button", name="Book booster").click()
    page.wait_for_url(BOARD)
    assert page.get_by_role("status").get_by_text("Booster booked for Jordan Avery").is_visible()
    booster = BoosterAppointment.objects.get()
    assert clinic_date(booster.scheduled_at) == suggested
    row = page.get_by_role("row", name=re.compile("Avery, Jordan"))
    assert "Booked" in row.inner_text()
    screenshot("boosters-board-booked")

    # Move it two open days later through the sessions' move page, and come back here.
    later = suggest_booster_day(due_on=suggested + dt.timedelta(days=2), today=today)
    row.get_by_role("link", name="Reschedule the booster of Jordan Avery").click()
    page.wait_for_url("**/move/**")
    page.get_by_label("Date").fill(later.isoformat())
    page.get_by_role("button", name="Move infusion").click()
    page.wait_for_url(BOARD)
    booster.refresh_from_db()
    assert clinic_date(booster.scheduled_at) == later
    row = page.get_by_role("row", name=re.compile("Avery, Jordan"))
    assert f"{later:%a} {later.day} {later:%b %Y}" in row.inner_text()


def test_a_scheduler_reads_and_clears_the_inbox(page, live_server, screenshot, cast):
    scheduler = cast["scheduler"]
    board = "/maintenance/boosters/"
    Notification.objects.create(
        recipient=scheduler,
        kind=NotificationKind.BOOSTER_STAGE,
        title="Booster due soon: an older one",
        read_at=timezone.now(),
    )
    for title, body, patient in [
        ("Booster overdue: Jordan Avery", "The booster was due 3 weeks ago and none is booked.", cast["avery"]),
        ("Booster due soon: Casey Brooks", "Due within 7 days.", cast["brooks"]),
        ("Maintenance plan needed: Dana Cho", "Induction complete; no maintenance plan yet.", cast["cho"]),
    ]:
        Notification.objects.create(
            recipient=scheduler,
            kind=NotificationKind.BOOSTER_STAGE,
            title=title,
            body=body,
            patient=patient,
            link=board,
        )
    log_in(page, live_server, "sam_scheduler")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name=re.compile("Inbox")).inner_text().strip() == "Inbox 3"

    nav.get_by_role("link", name=re.compile("Inbox")).click()
    assert page.get_by_text("3 unread notifications.").is_visible()
    unread = page.locator("li.notice--unread")
    assert unread.count() == 3
    assert unread.first.get_by_text("Unread").is_visible()
    screenshot("inbox")
    screenshot("inbox", width=390)
    screenshot("inbox")

    page.get_by_role("button", name=re.compile(r"^Mark read.*Dana Cho$")).click()
    assert page.locator("li.notice--unread").count() == 2
    assert nav.get_by_role("link", name=re.compile("Inbox")).inner_text().strip() == "Inbox 2"

    page.get_by_role("button", name=re.compile(r"^Open.*Jordan Avery$")).click()
    page.wait_for_url(BOARD)
    assert nav.get_by_role("link", name=re.compile("Inbox")).inner_text().strip() == "Inbox 1"

    nav.get_by_role("link", name=re.compile("Inbox")).click()
    page.get_by_role("button", name="Mark all as read").click()
    assert page.get_by_role("status").get_by_text("Marked 1 notification as read.").is_visible()
    assert page.get_by_text("Nothing unread.").is_visible()
    assert nav.get_by_role("link", name=re.compile("Inbox")).inner_text().strip() == "Inbox"
    assert not Notification.objects.filter(recipient=scheduler, read_at__isnull=True).exists()
    screenshot("inbox-read")
    screenshot("inbox-read", width=390)


def test_a_scheduler_gives_a_patient_a_plan_from_the_board(page, live_server, screenshot, cast):
    log_in(page, live_server, "sam_scheduler")
    page.wait_for_url(BOARD)
    page.get_by_role("link", name="Create plan for Dana Cho").click()
    page.wait_for_url("**/plan/**")
    assert page.get_by_role("heading", name="Create a maintenance plan").is_visible()
    assert page.get_by_label("Target interval (days)").input_value() == "28"
    # the booster protocol starts as the one the induction used
    assert page.get_by_label("Booster protocol").input_value() == str(cast["cho"].series.get().protocol_id)
    screenshot("boosters-plan")
    screenshot("boosters-plan", width=390)
    screenshot("boosters-plan")

    page.get_by_label("Minimum interval (days)").fill("35")  # longer than the target: refused
    page.get_by_role("button", name="Create plan").click()
    assert page.locator(".field--invalid").get_by_text("cannot be longer than the target").is_visible()
    assert page.get_by_label("Minimum interval (days)").input_value() == "35"
    screenshot("boosters-plan-error", width=390)

    page.get_by_label("Minimum interval (days)").fill("21")
    page.get_by_label("Maximum interval (days)").fill("49")
    page.get_by_label("Symptom trigger: PHQ-9 rise").fill("")
    page.get_by_role("button", name="Create plan").click()
    page.wait_for_url(BOARD)
    assert page.get_by_role("status").get_by_text("Maintenance plan created for Dana Cho").is_visible()
    assert page.get_by_role("row", name=re.compile("Cho, Dana")).get_by_text("min 21, max 49 days").is_visible()
    plan = cast["cho"].maintenance_plan
    assert plan.trigger_phq9_rise is None
