"""Patient pages: who may open them, what bad input gets, and what each shows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from maintenance.models import Notification, NotificationKind
from patients.models import Patient, PHQ9Assessment
from patients.phq9 import ITEM_FIELDS
from tests.factories import PatientFactory, PHQ9Factory, UserFactory

PASSWORD = "correct horse battery staple"


@pytest.fixture
def alert(patient):
    return PHQ9Factory(patient=patient, level=2, item_9=1)


def url_for(name: str, patient: Patient, alert: PHQ9Assessment) -> str:
    if name == "patients:phq9_acknowledge":
        return reverse(name, kwargs={"pk": alert.pk})
    if name in ("patients:list", "patients:create"):
        return reverse(name)
    return reverse(name, kwargs={"pk": patient.pk})


# Who gets what on a GET (POST-only pages are checked with POST).
PAGES = [
    # name, method, anonymous, patient, scheduler, clinician, superuser
    ("patients:list", "get", 302, 403, 200, 200, 200),
    ("patients:create", "get", 302, 403, 200, 200, 200),
    ("patients:detail", "get", 302, 403, 200, 200, 200),
    ("patients:edit", "get", 302, 403, 200, 200, 200),
    ("patients:phq9_new", "get", 302, 403, 403, 200, 200),
    ("patients:phq9_acknowledge", "post", 302, 403, 403, 302, 302),
    ("patients:invite", "post", 302, 403, 302, 302, 302),
]
ROLES = ["anonymous", "patient", "scheduler", "clinician", "superuser"]
CASES = [(name, method, role, codes[i]) for name, method, *codes in PAGES for i, role in enumerate(ROLES)]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method", "role", "expected"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_each_patient_page_answers_each_role(client, request, patient, alert, name, method, role, expected):
    if role == "patient":
        client.force_login(patient.user)
    elif role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    response = getattr(client, method)(
        url_for(name, patient, alert), {"action": "Called"} if method == "post" else None
    )
    assert response.status_code == expected
    if role == "anonymous":
        assert response.url.startswith(reverse("login"))


@pytest.mark.django_db
def test_a_patient_account_cannot_open_another_patients_page(client, patient, other_patient):
    client.force_login(patient.user)
    assert client.get(reverse("patients:detail", kwargs={"pk": other_patient.pk})).status_code == 403


@pytest.mark.django_db
def test_home_sends_each_role_to_its_work(client, clinician, scheduler, patient):
    client.force_login(clinician)
    assert client.get("/").url == reverse("infusions:today")
    client.force_login(scheduler)
    assert client.get("/").url == reverse("maintenance:board")
    client.force_login(patient.user)
    assert client.get("/").url == reverse("portal:home")
    client.force_login(UserFactory(username="nobody"))
    assert client.get("/").status_code == 403


@pytest.mark.django_db
def test_logging_in_and_out(client, clinician):
    response = client.post(reverse("login"), {"username": clinician.username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("patients:list")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("patients:list")).status_code == 302


# --- The list -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_list_searches_by_name_or_record_number_and_filters(client, scheduler):
    PatientFactory(mrn="KC-111", first_name="Ada", last_name="Lovelace", status="active", primary_diagnosis="ptsd")
    PatientFactory(mrn="KC-222", first_name="Alan", last_name="Turing", status="intake", primary_diagnosis="ocd")
    client.force_login(scheduler)
    url = reverse("patients:list")
    assert "Lovelace" in client.get(url, {"q": "love"}).text
    assert "Turing" not in client.get(url, {"q": "love"}).text
    assert "Turing" in client.get(url, {"q": "KC-222"}).text
    assert "Lovelace" not in client.get(url, {"status": "intake"}).text
    assert "Turing" not in client.get(url, {"primary_diagnosis": "ptsd"}).text
    assert "No patient matches" in client.get(url, {"q": "nobody"}).text


@pytest.mark.django_db
def test_the_list_runs_the_same_queries_for_10_or_40_patients(client, scheduler, django_assert_max_num_queries):
    client.force_login(scheduler)
    for count in (10, 40):
        for _ in range(count - Patient.objects.count()):
            PHQ9Factory(patient=PatientFactory())
        with django_assert_max_num_queries(9):  # with the access-log row
            assert client.get(reverse("patients:list")).status_code == 200


# --- Registering and editing ---------------------------------------------------------------


def patient_data(**changes) -> dict:
    return {
        "mrn": "KC-900",
        "first_name": "Grace",
        "last_name": "Hopper",
        "date_of_birth": "1976-12-09",
        "primary_diagnosis": "trd",
        "status": "intake",
        "weight_kg": "64.5",
        "weight_recorded_on": "2026-11-01",
        "email": "grace@example.test",
    } | changes


@pytest.mark.django_db
def test_staff_register_a_patient(client, scheduler):
    client.force_login(scheduler)
    response = client.post(reverse("patients:create"), patient_data())
    patient = Patient.objects.get(mrn="KC-900")
    assert response.url == patient.get_absolute_url()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"date_of_birth": "2999-01-01"}, "date_of_birth", "cannot be in the future"),
        ({"weight_kg": "700"}, "weight_kg", "less than or equal to 350"),
        ({"weight_recorded_on": ""}, None, "needs the date it was recorded"),
        ({"mrn": ""}, "mrn", "required"),
        ({"primary_diagnosis": "flu"}, "primary_diagnosis", "valid choice"),
    ],
)
def test_a_bad_registration_shows_the_error_keeps_the_input_and_saves_nothing(
    client, clinician, changes, field, message
):
    client.force_login(clinician)
    response = client.post(reverse("patients:create"), patient_data(**changes))
    assert response.status_code == 200
    form = response.context["form"]
    errors = form.errors.get(field or "__all__")
    assert errors
    assert message in " ".join(errors)
    assert 'value="Hopper"' in response.text
    assert not Patient.objects.filter(last_name="Hopper").exists()


@pytest.mark.django_db
def test_a_record_number_is_unique(client, scheduler):
    PatientFactory(mrn="KC-900")
    client.force_login(scheduler)
    response = client.post(reverse("patients:create"), patient_data())
    assert "mrn" in response.context["form"].errors


@pytest.mark.django_db
def test_staff_edit_a_record(client, clinician, patient):
    client.force_login(clinician)
    data = patient_data(mrn=patient.mrn, first_name="Renamed")
    response = client.post(reverse("patients:edit", kwargs={"pk": patient.pk}), data)
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.first_name == "Renamed"


# --- The patient page ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_puts_an_unacknowledged_safety_alert_on_top(client, clinician, patient, alert):
    client.force_login(clinician)
    page = client.get(patient.get_absolute_url()).text
    assert "Safety alert: item 9" in page
    assert page.index("Safety alert: item 9") < page.index("Depression (PHQ-9)")
    assert reverse("patients:phq9_acknowledge", kwargs={"pk": alert.pk}) in page


@pytest.mark.django_db
def test_a_scheduler_sees_the_alert_but_cannot_acknowledge_it(client, scheduler, patient, alert):
    client.force_login(scheduler)
    page = client.get(patient.get_absolute_url()).text
    assert "A clinician must acknowledge this alert" in page
    assert reverse("patients:phq9_acknowledge", kwargs={"pk": alert.pk}) not in page


@pytest.mark.django_db
def test_the_page_shows_severity_baseline_and_response(client, clinician, patient):
    PHQ9Factory(patient=patient, level=2, taken_at=timezone.now() - dt.timedelta(days=1))
    client.force_login(clinician)
    page = client.get(patient.get_absolute_url()).text
    assert "Moderately severe" in page
    assert "none before this episode" in page  # no series yet, so no baseline


@pytest.mark.django_db
def test_the_patient_page_runs_a_bounded_number_of_queries(client, clinician, patient, django_assert_max_num_queries):
    for days in range(30):
        PHQ9Factory(patient=patient, taken_at=timezone.now() - dt.timedelta(days=days))
    client.force_login(clinician)
    with django_assert_max_num_queries(30):
        client.get(patient.get_absolute_url())


# --- PHQ-9 entry and acknowledgement ------------------------------------------------------------


def phq9_data(**answers) -> dict:
    data = dict.fromkeys(ITEM_FIELDS, "1") | {"difficulty": "somewhat"}
    data["taken_at"] = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    return data | answers


@pytest.mark.django_db
def test_a_clinician_enters_a_phq9(client, clinician, patient):
    client.force_login(clinician)
    response = client.post(reverse("patients:phq9_new", kwargs={"pk": patient.pk}), phq9_data())
    assert response.status_code == 302
    assessment = PHQ9Assessment.objects.get()
    assert assessment.total == 9
    assert assessment.entered_by == clinician


@pytest.mark.django_db
def test_an_incomplete_phq9_is_refused_with_the_missing_item_marked(client, clinician, patient):
    client.force_login(clinician)
    data = phq9_data()
    del data["item_4"]
    response = client.post(reverse("patients:phq9_new", kwargs={"pk": patient.pk}), data)
    assert response.status_code == 400
    assert "item_4" in response.context["form"].errors
    assert "Answer this question" in response.text
    assert re.search(r'<input[^>]*name="item_1" value="1"[^>]*checked', response.text)  # answers kept
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_an_out_of_range_answer_is_refused(client, clinician, patient):
    client.force_login(clinician)
    response = client.post(reverse("patients:phq9_new", kwargs={"pk": patient.pk}), phq9_data(item_2="4"))
    assert response.status_code == 400
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_the_phq9_form_gets_its_bands_from_the_server_not_a_script(client, clinician, patient):
    client.force_login(clinician)
    page = client.get(reverse("patients:phq9_new", kwargs={"pk": patient.pk})).text
    assert '<script id="phq9-bands" type="application/json">' in page
    assert "Moderately severe" in page
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", page)  # no inline scripts


@pytest.mark.django_db
def test_item_9_above_0_alerts_every_clinician_at_once(client, clinician, other_clinician, scheduler, patient):
    patient.primary_clinician = other_clinician
    patient.save()
    client.force_login(clinician)
    response = client.post(reverse("patients:phq9_new", kwargs={"pk": patient.pk}), phq9_data(item_9="2"), follow=True)
    assert "clinicians have been alerted" in response.text
    alerts = Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT)
    assert {n.recipient for n in alerts} == {clinician, other_clinician}
    assert all(n.link == patient.get_absolute_url() for n in alerts)


@pytest.mark.django_db
def test_a_clinician_acknowledges_an_alert_with_the_action(client, clinician, patient, alert):
    client.force_login(clinician)
    response = client.post(
        reverse("patients:phq9_acknowledge", kwargs={"pk": alert.pk}), {"action": "Called; safe"}, follow=True
    )
    assert "Safety alert acknowledged" in response.text
    alert.refresh_from_db()
    assert alert.safety_acknowledged_by == clinician
    assert "Safety alert: item 9" not in response.text


@pytest.mark.django_db
def test_an_acknowledgement_without_an_action_changes_nothing(client, clinician, patient, alert):
    client.force_login(clinician)
    response = client.post(reverse("patients:phq9_acknowledge", kwargs={"pk": alert.pk}), {"action": " "}, follow=True)
    assert "Describe the action taken" in response.text
    alert.refresh_from_db()
    assert alert.safety_acknowledged_at is None


# --- Portal invitation -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_invitation_emails_a_one_time_link_without_clinical_detail(client, scheduler, settings):
    settings.CLINIC_NAME = "Riverside Wellness"
    patient = PatientFactory(email="ada@example.test")
    PHQ9Factory(patient=patient, level=3)
    client.force_login(scheduler)
    client.post(reverse("patients:invite", kwargs={"pk": patient.pk}))
    (message,) = mail.outbox
    assert message.to == ["ada@example.test"]
    for clinical in ("phq", "ketamine", "infusion", "depression", "dose", "score"):
        assert clinical not in message.body.lower()
    link = re.search(r"http://testserver(/portal/welcome/\S+)", message.body).group(1)

    client.logout()
    set_page = client.get(link, follow=True)
    assert "Choose a password" in set_page.text
    new_password = "a long and private passphrase"
    done = client.post(set_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302
    response = client.post(reverse("login"), {"username": "ada@example.test", "password": new_password})
    assert response.status_code == 302, "the new password logs in"
    client.logout()
    # The link works once.
    assert "no longer works" in client.get(link, follow=True).text


@pytest.mark.django_db
def test_an_invitation_needs_an_email_address(client, scheduler):
    patient = PatientFactory(email="")
    client.force_login(scheduler)
    response = client.post(reverse("patients:invite", kwargs={"pk": patient.pk}), follow=True)
    assert "Add the patient&#x27;s email address" in response.text
    patient.refresh_from_db()
    assert patient.user is None
    assert not mail.outbox


@pytest.mark.django_db
def test_a_patient_with_an_account_is_not_invited_twice(client, scheduler, patient):
    client.force_login(scheduler)
    response = client.post(reverse("patients:invite", kwargs={"pk": patient.pk}), follow=True)
    assert "already has a portal account" in response.text
    assert not mail.outbox


# --- The portal home -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_portal_shows_a_patient_only_their_own_progress(client, patient, other_patient):
    PHQ9Factory(patient=patient, level=1)
    PHQ9Factory(patient=other_patient, level=3)
    client.force_login(patient.user)
    page = client.get(reverse("portal:home")).text
    assert f"Hello, {patient.first_name}" in page
    assert "<strong>8</strong>" in page
    assert "<strong>24</strong>" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["clinician", "scheduler"])
def test_staff_have_no_portal(client, request, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("portal:home")).status_code == 403


@pytest.mark.django_db
def test_acknowledging_an_alert_clears_it_from_every_clinicians_inbox(client, clinician, other_clinician, patient):
    patient.primary_clinician = other_clinician
    patient.save()
    client.force_login(clinician)
    client.post(reverse("patients:phq9_new", kwargs={"pk": patient.pk}), phq9_data(item_9="1"))
    assert Notification.objects.unread().count() == 2
    assessment = PHQ9Assessment.objects.get()
    client.post(reverse("patients:phq9_acknowledge", kwargs={"pk": assessment.pk}), {"action": "Called"})
    assert Notification.objects.unread().count() == 0


def test_a_blood_pressure_alert_names_the_value_that_crossed():
    from sessions.vitals import vital_alerts

    (alert,) = vital_alerts(phase="during", systolic=178, diastolic=106)
    assert alert.message == "Blood pressure 178/106 mmHg: diastolic above 100"
