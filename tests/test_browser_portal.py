"""A patient follows their progress and fills in the PHQ-9 on a phone; staff see the curve drawn."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from maintenance.models import Notification, NotificationKind
from patients.models import PHQ9Assessment, PHQ9Source
from tests.browser import log_in
from tests.factories import PatientFactory, PHQ9Factory, UserFactory

PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def scores(patient, *levels: int) -> None:
    for weeks_ago, level in zip(range(len(levels), 0, -1), levels, strict=True):
        PHQ9Factory(patient=patient, level=level, taken_at=timezone.now() - dt.timedelta(weeks=weeks_ago))


def test_a_patient_sees_their_curve_and_fills_in_the_phq9_on_a_phone(page, live_server, screenshot):
    clinician = UserFactory(username="dr_lee", role="clinician")
    patient = PatientFactory(with_portal_account=True, first_name="Jordan", primary_clinician=clinician)
    scores(patient, 3, 2, 2, 1)
    page.set_viewport_size(PHONE)

    log_in(page, live_server, patient.user.username)
    assert page.get_by_role("heading", name="Hello, Jordan").is_visible()
    page.locator(".chart__plot .main-svg").first.wait_for()  # Plotly drew the curve
    screenshot("portal-home", width=390)
    screenshot("portal-home", width=1280)
    page.set_viewport_size(PHONE)

    page.get_by_role("link", name="Fill in today's questionnaire").click()
    crisis = page.locator("[data-phq9-safety]")
    for number in range(1, 9):
        page.locator(f"#id_item_{number}_1").check()
    assert not crisis.is_visible()
    page.locator("#id_item_9_1").check()  # "Several days"
    assert crisis.is_visible()  # crisis resources at once, before sending
    assert "Call or text 988" in crisis.inner_text()
    screenshot("portal-phq9", width=390)
    page.set_viewport_size(PHONE)

    page.get_by_role("button", name="Send my answers").click()
    assert page.get_by_role("heading", name="Thank you for telling us").is_visible()
    assert page.get_by_text("Call or text 988").is_visible()
    screenshot("portal-crisis", width=390)
    saved = PHQ9Assessment.objects.get(source=PHQ9Source.PORTAL)
    assert saved.total == 9
    assert Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT, recipient=clinician).exists()

    # Once a day: the home page says when the next one is due.
    page.goto(f"{live_server.url}/portal/")
    assert page.get_by_text("Next questionnaire from").is_visible()


def test_staff_see_the_response_curve_drawn_on_the_patient_page(page, live_server, screenshot):
    UserFactory(username="dr_lee", role="clinician")
    patient = PatientFactory()
    scores(patient, 3, 3, 2, 1, 1, 0)
    log_in(page, live_server, "dr_lee")
    page.goto(f"{live_server.url}{patient.get_absolute_url()}")
    plot = page.locator(".chart__plot")
    plot.locator(".main-svg").first.wait_for()
    assert plot.locator(".scatterlayer .trace").count() >= 1
    page.get_by_text("Show the data as a table").click()
    assert page.locator(".chart__table tbody tr").count() == 6
    screenshot("patient-curve")
    screenshot("patient-curve", width=390)
