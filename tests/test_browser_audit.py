"""An auditor reads a patient's trail in the browser: who looked, who was refused, what changed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import log_in
from tests.factories import PatientFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()


def test_an_auditor_sees_who_read_who_was_refused_and_what_changed(page, live_server, screenshot):
    clinician = UserFactory(username="dr_lee", role="clinician")
    UserFactory(username="rae_auditor", role="auditor")
    jordan = PatientFactory(first_name="Jordan", last_name="Avery", phone="555-0101")
    other = PatientFactory(with_portal_account=True, first_name="Casey", last_name="Morgan")

    # A clinician reads Jordan's record and corrects the phone number.
    log_in(page, live_server, clinician.username)
    page.goto(f"{live_server.url}{jordan.get_absolute_url()}")
    page.get_by_role("link", name="Edit record").click()
    page.locator("#id_phone").fill("555-0199")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Jordan Avery")).to_be_visible()
    log_out(page)

    # Another patient tries Jordan's page: refused.
    log_in(page, live_server, other.user.username)
    response = page.goto(f"{live_server.url}{jordan.get_absolute_url()}")
    assert response.status in (403, 404)
    log_out(page)

    log_in(page, live_server, "rae_auditor")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()  # where an auditor starts
    page.get_by_label("Patient").fill(jordan.mrn)
    page.get_by_role("button", name="Search").click()

    reads = page.locator("table").first
    expect(reads.get_by_role("row").filter(has_text=other.user.username).get_by_text("Refused")).to_be_visible()
    expect(reads.get_by_role("row").filter(has_text="dr_lee").first.get_by_text("Allowed")).to_be_visible()
    changes = page.locator("table").nth(1)
    expect(changes.get_by_text("555-0101 → 555-0199")).to_be_visible()
    screenshot("audit-trail")
