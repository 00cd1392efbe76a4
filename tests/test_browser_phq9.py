"""A clinician enters a PHQ-9 with item 9 above 0 and acknowledges the alert, in Chromium."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from maintenance.models import Notification, NotificationKind
from patients.models import PHQ9Assessment
from tests.browser import log_in
from tests.factories import PatientFactory, PHQ9Factory, UserFactory

PASSWORD = "correct horse battery staple"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_phq9_with_item_9_raises_an_alert_that_a_clinician_acknowledges(page, live_server, screenshot):
    clinician = UserFactory(username="dr_lee", first_name="Maya", last_name="Lee", role="clinician")
    patient = PatientFactory(first_name="Jordan", last_name="Avery", primary_clinician=clinician)
    PHQ9Factory(patient=patient, level=2, taken_at=timezone.now() - dt.timedelta(days=1))

    log_in(page, live_server, "dr_lee")
    page.goto(f"{live_server.url}{patient.get_absolute_url()}")
    screenshot("patient-page")
    screenshot("patient-page", width=390)
    page.get_by_role("link", name="Enter PHQ-9").first.click()

    # Answer the nine items; the total and band follow as the form is filled.
    answers = [2, 2, 1, 1, 2, 1, 1, 0, 1]
    for number, answer in enumerate(answers, start=1):
        page.locator(f"#id_item_{number}_{answer}").check()
    assert page.locator("[data-phq9-total]").inner_text() == "11"
    assert page.locator("[data-phq9-band]").inner_text() == "Moderate"
    assert page.locator("[data-phq9-safety]").is_visible()  # item 9 above 0
    page.get_by_label("Somewhat difficult").check()
    screenshot("phq9-form")
    screenshot("phq9-form", width=390)
    page.get_by_role("button", name="Save PHQ-9").click()

    assert page.get_by_text("PHQ-9 saved: 11 (moderate).").is_visible()
    alert = page.get_by_role("heading", name="Safety alert: item 9 answered “several days”")
    assert alert.is_visible()
    assert page.locator(".site-nav .count").inner_text() == "1"  # the unread badge in the header
    assert Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT, recipient=clinician).exists()
    screenshot("patient-alert")

    page.get_by_label("Action taken").fill("Called Jordan; safety plan reviewed, no immediate risk.")
    page.get_by_role("button", name="Acknowledge alert").click()
    assert page.get_by_text("Safety alert acknowledged.").is_visible()
    assert not alert.count()
    acknowledged = PHQ9Assessment.objects.get(item_9=1)
    assert acknowledged.safety_acknowledged_by == clinician
    assert acknowledged.safety_action.startswith("Called Jordan")


def test_an_incomplete_phq9_keeps_the_answers_and_marks_the_missing_item(page, live_server):
    UserFactory(username="dr_lee", role="clinician")
    patient = PatientFactory()
    log_in(page, live_server, "dr_lee")
    page.goto(f"{live_server.url}/patients/{patient.pk}/phq9/new/")
    for number in range(1, 9):  # item 9 left out
        page.locator(f"#id_item_{number}_1").check()
    assert page.locator("[data-phq9-band]").inner_text() == "—"
    page.get_by_role("button", name="Save PHQ-9").click()
    assert page.get_by_role("alert").first.is_visible()
    assert page.locator("#id_item_9_errors").inner_text() == "Answer this question: every item is needed for the total."
    assert page.locator("#id_item_3_1").is_checked()
    assert not PHQ9Assessment.objects.exists()
