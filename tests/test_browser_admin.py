"""The superuser's first look: log into the admin and find the clinic's patients."""

from __future__ import annotations

import pytest

from tests.browser import log_in
from tests.factories import PatientFactory, PHQ9Factory, UserFactory

PASSWORD = "correct horse battery staple"

# The live server reads in its own thread, so these tests commit (and the database is
# flushed after each; factories re-create the role groups the migration made).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_superuser_logs_in_and_finds_a_patient_with_their_phq9s(page, live_server, screenshot):
    UserFactory(username="root", is_superuser=True, is_staff=True)
    patient = PatientFactory(mrn="KC-20001", last_name="Avery", first_name="Jordan")
    PHQ9Factory(patient=patient, level=2, item_9=1)
    PatientFactory(mrn="KC-20002", last_name="Bennett")

    log_in(page, live_server, "root", PASSWORD, admin=True)
    assert page.get_by_role("link", name="Ketamine clinic administration").is_visible()
    screenshot("admin-index")
    screenshot("admin-index", width=390)

    page.locator("tr.model-patient").get_by_role("link", name="Patients").click()
    page.locator("#searchbar").fill("KC-20001")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/admin/patients/patient/?q=*")
    screenshot("admin-patients")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1

    rows.first.get_by_role("link").first.click()
    assert page.locator("input[name=mrn]").input_value() == "KC-20001"
    inline = page.locator("#phq9_assessments-group")
    assert "17" in inline.inner_text()  # the PHQ-9 total (eight items at 2, item 9 at 1)
    screenshot("admin-patient")


def test_a_clinician_account_is_kept_out_of_the_admin(page, live_server):
    UserFactory(username="dr_lee", role="clinician", is_staff=True)
    log_in(page, live_server, "dr_lee", PASSWORD, admin=True)
    assert page.url.startswith(f"{live_server.url}/admin/login/")
    assert not page.get_by_role("link", name="Patients").count()
