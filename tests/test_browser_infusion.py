"""A clinician logs an induction infusion in the browser, from the day list to the signed record."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from playwright.sync_api import expect

from sessions.models import InfusionSession, SessionStatus
from sessions.scheduling import clinic_datetime
from sessions.services import check_infusion_day, series_create
from tests.browser import log_in
from tests.factories import PatientFactory, PHQ9Factory, ProtocolFactory, UserFactory

PASSWORD = "correct horse battery staple"

# The live server reads in its own thread, so these tests commit (and the database is
# flushed after each; factories re-create the role groups the migration made).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def next_clinic_morning() -> dt.datetime:
    """10:00 on today's date if the clinic opens today, else on the next open weekday.

    Never in the past: the browser keeps real time, and session cookies set at a
    travelled-to time weeks ago would already have expired.
    """
    day = timezone.localdate()
    while day.weekday() in settings.CLINIC_CLOSED_WEEKDAYS:
        day += dt.timedelta(days=1)
    return clinic_datetime(day, dt.time(10, 0))


def test_a_clinician_logs_an_induction_infusion_end_to_end(page, live_server, screenshot):
    morning = next_clinic_morning()
    with time_machine.travel(morning, tick=True):
        clinician = UserFactory(username="dr_lee", role="clinician", first_name="Robin", last_name="Lee")
        patient = PatientFactory(mrn="KC-30001", first_name="Jordan", last_name="Avery")
        PHQ9Factory(patient=patient, level=2, taken_at=morning - dt.timedelta(days=2))  # 16: moderately severe
        series = series_create(
            patient=patient, protocol=ProtocolFactory(), start_date=morning.date(), created_by=clinician
        )
        session = series.sessions.order_by("scheduled_at").first()

        log_in(page, live_server, "dr_lee")
        expect(page.get_by_role("heading", level=1)).to_have_text("Today's infusions")
        row = page.locator("tr", has_text="Jordan Avery")
        expect(row).to_contain_text("Induction 1 of 6")
        expect(row).to_contain_text("Early in series: watch BP")
        expect(row).to_contain_text("Moderately severe")
        screenshot("infusions-today")
        screenshot("infusions-today", width=390)
        page.set_viewport_size({"width": 1280, "height": 860})

        page.get_by_role("link", name="Open infusion log for Jordan Avery").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Infusion log: Jordan Avery")
        expect(page.get_by_label("Weight (kg)")).to_have_value("72.5")
        expect(page.locator(".dose-preview")).to_contain_text("= 36.3 mg")

        # Confirm a new weight and see the dose before starting.
        page.get_by_label("Weight (kg)").fill("80.0")
        page.get_by_role("button", name="Show dose").click()
        expect(page.locator(".dose-preview")).to_contain_text("0.50 mg/kg \u00d7 80.0 kg = 40.0 mg")
        page.get_by_role("button", name="Confirm and start infusion").click()
        expect(page.locator(".messages")).to_contain_text("Dose: 40.0 mg (0.50 mg/kg x 80.0 kg)")

        # A normal reading, then one past the alert threshold.
        vitals = page.locator("form", has=page.get_by_role("button", name="Record reading"))
        expect(vitals.get_by_label("Phase")).to_have_value("during")
        vitals.get_by_label("Systolic (mmHg)").fill("128")
        vitals.get_by_label("Diastolic (mmHg)").fill("80")
        vitals.get_by_label("Heart rate (/min)").fill("76")
        vitals.get_by_label("SpO2 (%)").fill("98")
        vitals.get_by_role("button", name="Record reading").click()
        expect(page.locator(".messages")).to_contain_text("recorded")

        vitals.get_by_label("Systolic (mmHg)").fill("192")
        vitals.get_by_label("Diastolic (mmHg)").fill("106")
        vitals.get_by_label("Heart rate (/min)").fill("118")
        vitals.get_by_role("button", name="Record reading").click()
        bp_alert = "Blood pressure 192/106 mmHg: systolic above 180 and diastolic above 100"
        expect(page.locator(".messages")).to_contain_text(f"Alert raised: {bp_alert}")
        alert_rows = page.locator(".vitals-table tr.is-alert")
        expect(alert_rows).to_have_count(1)
        expect(alert_rows).to_contain_text(f"Alert: {bp_alert}")
        expect(alert_rows).to_contain_text("Alert: Heart rate 118/min above 110")
        expect(page.locator(".vitals-table tbody tr")).to_have_count(2)
        screenshot("infusion-detail-alert")
        screenshot("infusion-detail-alert", width=390)
        page.set_viewport_size({"width": 1280, "height": 860})

        # Side effect, completion with the dissociation score, discharge.
        page.get_by_role("combobox", name="Side effect").select_option(label="Nausea / vomiting")
        page.get_by_label("Severity").select_option(label="Mild")
        page.get_by_label("Note:", exact=True).fill("Settled with ondansetron")
        page.get_by_role("button", name="Add side effect").click()
        expect(page.locator("#effect table")).to_contain_text("Nausea / vomiting")

        page.get_by_label("Dissociation scale").select_option(label="CADSS-6 short form (0-24)")
        page.get_by_label("Dissociation score").fill("6")
        page.get_by_label("Clinical notes").fill("Tolerated well after BP settled.")
        page.get_by_role("button", name="Complete infusion").click()
        expect(page.locator(".messages")).to_contain_text("Infusion completed")

        page.get_by_role("button", name="Record discharge").click()
        expect(page.locator(".messages")).to_contain_text("Patient discharged")

        # Sign (the button asks for confirmation), then the record is locked.
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Sign and lock").click()
        expect(page.locator(".lock-banner")).to_contain_text(re.compile(r"Signed by Robin Lee at .+, locked\."))
        expect(page.get_by_role("button", name="Record reading")).to_have_count(0)
        expect(page.get_by_role("button", name="Add side effect")).to_have_count(0)
        expect(page.get_by_role("button", name="Record amendment")).to_be_visible()
        screenshot("infusion-detail-signed")

        stored = InfusionSession.objects.get(pk=session.pk)
        assert stored.status == SessionStatus.COMPLETED
        assert stored.signed_by == clinician
        assert (stored.dissociation_scale, stored.dissociation_score) == ("cadss6", 6)
        assert stored.vitals.count() == 2
        assert stored.side_effects.count() == 1

        page.get_by_role("link", name="Calendar").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Week of")
        expect(page.locator(".week__day--today")).to_contain_text("Jordan Avery")
        screenshot("infusions-week")
        screenshot("infusions-week", width=390)


def test_a_scheduler_books_a_series_moves_and_cancels_an_infusion_and_books_a_make_up(page, live_server, screenshot):
    morning = next_clinic_morning()
    with time_machine.travel(morning, tick=True) as clock:
        UserFactory(username="sam_scheduler", role="scheduler", first_name="Sam", last_name="Reyes")
        patient = PatientFactory(mrn="KC-30002", first_name="Casey", last_name="Brook")
        ProtocolFactory()

        log_in(page, live_server, "sam_scheduler")
        page.goto(f"{live_server.url}/infusions/patients/{patient.pk}/series/new/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Start an induction series")
        page.get_by_label("Protocol").select_option(label="IV induction 6 x twice weekly")
        page.get_by_role("button", name="Preview dates").click()
        expect(page.locator(".plan__dates li")).to_have_count(6)
        assert not InfusionSession.objects.exists()  # a preview saves nothing
        screenshot("infusions-series-new")
        screenshot("infusions-series-new", width=390)
        page.set_viewport_size({"width": 1280, "height": 860})

        page.get_by_role("button", name="Book these 6 infusions").click()
        page.wait_for_url(f"**{patient.get_absolute_url()}")
        sessions = list(InfusionSession.objects.filter(patient=patient).order_by("scheduled_at"))
        assert len(sessions) == 6
        first = sessions[0]

        # Move the first infusion from the calendar: a closed day is refused, then a good day.
        week_url = f"{live_server.url}/infusions/calendar/?week={first.scheduled_on:%Y-%m-%d}"
        page.goto(week_url)
        page.get_by_role("link", name=re.compile(r"^Move Casey Brook")).first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Move an infusion")
        saturday = first.scheduled_on + dt.timedelta(days=(5 - first.scheduled_on.weekday()) % 7)
        page.get_by_label("Date").fill(f"{saturday:%Y-%m-%d}")
        page.get_by_role("button", name="Move infusion").click()
        expect(page.locator(".field--invalid")).to_contain_text("The clinic is closed")
        screenshot("infusions-move-refused")
        screenshot("infusions-move-refused", width=390)
        page.set_viewport_size({"width": 1280, "height": 860})

        new_day = free_day_after(first)
        page.get_by_label("Date").fill(f"{new_day:%Y-%m-%d}")
        page.get_by_role("button", name="Move infusion").click()
        page.wait_for_url(week_url)
        expect(page.locator(".messages")).to_contain_text("infusion moved to")

        # The day comes and the patient does not: mark it missed, then book the make-up.
        clock.move_to(clinic_datetime(new_day, dt.time(16)))
        page.goto(
            f"{live_server.url}/infusions/{first.pk}/cancel/?next=/infusions/calendar/%3Fweek%3D{new_day:%Y-%m-%d}"
        )
        page.get_by_label("Missed (the patient did not come)").check()
        page.get_by_label("Reason").fill("Did not attend; phoned, unwell")
        screenshot("infusions-cancel")
        screenshot("infusions-cancel", width=390)
        page.set_viewport_size({"width": 1280, "height": 860})
        page.get_by_role("button", name="Record").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Book a make-up infusion")
        screenshot("infusions-makeup")
        screenshot("infusions-makeup", width=390)
        page.set_viewport_size({"width": 1280, "height": 860})
        page.get_by_role("button", name="Book make-up infusion").click()
        expect(page.locator(".messages")).to_contain_text("Make-up infusion booked for Casey Brook")
        assert InfusionSession.objects.filter(patient=patient, status=SessionStatus.SCHEDULED).count() == 6
        assert InfusionSession.objects.get(pk=first.pk).status == SessionStatus.MISSED


def free_day_after(session: InfusionSession) -> dt.date:
    """The first day after ``session`` it may move to under the booking rules."""
    day = session.scheduled_on
    while True:
        day += dt.timedelta(days=1)
        try:
            check_infusion_day(patient=session.patient, day=day, exclude=session)
        except ValidationError:
            continue
        return day
