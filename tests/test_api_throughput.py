"""What keeps the two API lists that ``make bench`` loads cheap (issue 8), and what each
saving must not change: who sees what, and the one access-log row per request.

- ``GET /api/v1/patients/`` lists each patient without the contact details, which are
  encrypted at rest: not read, not decrypted, and read instead from the patient's record,
  where the access log names the patient.
- ``GET /api/v1/phq9/?patient=`` reads no patient row per questionnaire, and the access log
  names the patient from the rows the list read instead of looking the patient up again.
- A filter set builds its form class once, not once per request.
"""

from __future__ import annotations

import django_filters
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from audit.models import AccessLog, Outcome
from clinic import encryption
from clinic.api import ClinicFilterSet
from patients.api import ENCRYPTED_CONTACT_FIELDS, PHQ9ApiFilter
from patients.models import Patient, PHQ9Assessment
from tests.factories import PatientFactory, PHQ9Factory

API = "/api/v1"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=user)[1]}")
    return client


def ok(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.content)
    return response.json()


def logged(user) -> list[AccessLog]:
    return list(AccessLog.objects.filter(user_id=user.pk).order_by("id"))


@pytest.fixture
def contactable(db):
    """Patients with every contact detail filled in."""
    return [
        PatientFactory(
            phone=f"555-010{n}",
            address=f"{n} Main Street",
            emergency_contact_name="Alex Doe",
            emergency_contact_phone="555-0199",
        )
        for n in range(3)
    ]


# --- The patient list: no contact details ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["clinician", "scheduler"])
def test_the_patient_list_leaves_out_the_contact_details_which_the_record_keeps(request, role, contactable):
    client = token_client(request.getfixturevalue(role))
    rows = ok(client.get(f"{API}/patients/"))["results"]
    assert len(rows) == len(contactable)
    for row in rows:
        assert not set(ENCRYPTED_CONTACT_FIELDS) & set(row), row
        assert {"id", "mrn", "first_name", "last_name", "status", "has_portal_account", "clinical"} <= set(row)
    record = ok(client.get(f"{API}/patients/{contactable[0].pk}/"))
    assert record["phone"] == "555-0100"
    assert record["address"] == "0 Main Street"
    assert record["email"] == contactable[0].email


@pytest.mark.django_db
def test_a_patients_own_row_in_the_list_leaves_them_out_too(patient):
    (row,) = ok(token_client(patient.user).get(f"{API}/patients/"))["results"]
    assert row["id"] == str(patient.pk)
    assert not set(ENCRYPTED_CONTACT_FIELDS) & set(row)
    assert ok(token_client(patient.user).get(f"{API}/patients/{patient.pk}/"))["email"] == patient.email


@pytest.mark.django_db
def test_the_patient_list_decrypts_nothing(clinician, contactable, monkeypatch):
    client = token_client(clinician)
    client.get(f"{API}/patients/")  # the first request of a client may write its session
    decrypted = []
    original = encryption.decrypt
    monkeypatch.setattr(encryption, "decrypt", lambda token: decrypted.append(token) or original(token))
    ok(client.get(f"{API}/patients/"))
    assert decrypted == []
    ok(client.get(f"{API}/patients/{contactable[0].pk}/"))
    assert decrypted  # the record does


@pytest.mark.django_db
def test_reading_a_patients_contact_details_is_logged_with_that_patient(clinician, contactable):
    client = token_client(clinician)
    ok(client.get(f"{API}/patients/"))
    ok(client.get(f"{API}/patients/{contactable[1].pk}/"))
    listed, read = logged(clinician)
    assert (listed.view, listed.patient_id) == ("api:patient-list", None)
    assert (read.view, read.patient_id, read.outcome) == ("api:patient-detail", contactable[1].pk, Outcome.ALLOWED)


def test_the_schema_says_the_list_has_no_contact_details():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    listed = schema["paths"]["/api/v1/patients/"]["get"]
    page = listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert components[page]["properties"]["results"]["items"]["$ref"].endswith("/PatientSummary")
    assert not set(ENCRYPTED_CONTACT_FIELDS) & set(components["PatientSummary"]["properties"])
    assert set(ENCRYPTED_CONTACT_FIELDS) <= set(components["Patient"]["properties"])
    assert set(ENCRYPTED_CONTACT_FIELDS) <= set(components["PatientDetail"]["properties"])
    assert "GET /api/v1/patients/{id}/" in listed["description"]


# --- The PHQ-9 list of one patient --------------------------------------------------------------


@pytest.fixture
def history(patient):
    return [PHQ9Factory(patient=patient, level=level) for level in (3, 2, 1)] + [PHQ9Factory(patient=patient, item_9=1)]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["clinician", "scheduler"])
def test_staff_list_one_patients_phq9s_without_reading_a_patient_row(request, role, patient, history):
    user = request.getfixturevalue(role)
    client = token_client(user)
    client.get(f"{API}/phq9/")
    with CaptureQueriesContext(connection) as queries:
        rows = ok(client.get(f"{API}/phq9/", {"patient": str(patient.pk)}))["results"]
    assert len(rows) == len(history)
    assert not [q["sql"] for q in queries.captured_queries if '"patients_patient"' in q["sql"]]
    # ... and the access log names the patient all the same, once.
    entry = logged(user)[-1]
    assert (entry.view, entry.patient_id, entry.outcome, entry.object_id) == (
        "api:phq9-list",
        patient.pk,
        Outcome.ALLOWED,
        str(patient.pk),
    )


@pytest.mark.django_db
def test_naming_a_patient_costs_the_list_no_query(clinician, patient, history):
    client = token_client(clinician)
    client.get(f"{API}/phq9/")
    with CaptureQueriesContext(connection) as every:
        ok(client.get(f"{API}/phq9/"))
    with CaptureQueriesContext(connection) as one:
        ok(client.get(f"{API}/phq9/", {"patient": str(patient.pk)}))
    assert len(one) == len(every)


@pytest.mark.django_db
def test_a_patients_own_phq9s_are_shown_to_them_and_logged_as_allowed(patient, history):
    client = token_client(patient.user)
    rows = ok(client.get(f"{API}/phq9/", {"patient": str(patient.pk)}))["results"]
    assert len(rows) == len(history)
    assert all(row["answers"] is not None and row["safety_flag"] is not None for row in rows)
    flagged = [row for row in rows if row["safety_flag"]]
    assert len(flagged) == 1
    assert "call or text" in flagged[0]["crisis_support"]
    assert flagged[0]["answers"]["item_9"] == 1
    (entry,) = logged(patient.user)
    assert (entry.patient_id, entry.outcome) == (patient.pk, Outcome.ALLOWED)


@pytest.mark.django_db
def test_another_patients_phq9s_are_refused_and_logged_with_that_patient(patient, other_patient, history):
    client = token_client(other_patient.user)
    assert ok(client.get(f"{API}/phq9/", {"patient": str(patient.pk)}))["results"] == []
    (entry,) = logged(other_patient.user)
    assert (entry.patient_id, entry.outcome) == (patient.pk, Outcome.REFUSED)


@pytest.mark.django_db
def test_a_patient_with_no_phq9_or_no_record_is_still_looked_up_for_the_log(clinician, other_patient):
    client = token_client(clinician)
    assert ok(client.get(f"{API}/phq9/", {"patient": str(other_patient.pk)}))["results"] == []
    nobody = "00000000-0000-4000-8000-000000000000"
    assert ok(client.get(f"{API}/phq9/", {"patient": nobody}))["results"] == []
    named, unknown = logged(clinician)
    assert (named.patient_id, named.outcome) == (other_patient.pk, Outcome.ALLOWED)
    assert (unknown.patient_id, unknown.object_id) == (None, nobody)


@pytest.mark.django_db
def test_an_id_written_otherwise_is_looked_up_as_before(clinician, patient, history):
    """The rows are handed to the log only for the id exactly as they carry it: any other
    spelling the filter accepts is looked up by the log, as it always was."""
    client = token_client(clinician)
    assert len(ok(client.get(f"{API}/phq9/", {"patient": str(patient.pk).upper()}))["results"]) == len(history)
    (entry,) = logged(clinician)
    assert entry.patient_id == patient.pk


@pytest.mark.django_db
def test_each_reader_sees_what_their_role_allows_in_the_list_and_the_record(clinician, scheduler, patient, history):
    flagged = history[-1]
    for user, sees in ((clinician, True), (scheduler, False), (patient.user, True)):
        client = token_client(user)
        listed = {row["id"]: row for row in ok(client.get(f"{API}/phq9/"))["results"]}
        record = ok(client.get(f"{API}/phq9/{flagged.pk}/"))
        assert listed[str(flagged.pk)] == record
        assert (record["answers"] is not None) is sees, user
        if sees:
            assert record["answers"] == {f"item_{n}": 1 for n in range(1, 10)} | {"difficulty": ""}
            assert record["safety_flag"] is True
        else:
            assert record["safety_flag"] is None


# --- Filter sets ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_filter_set_builds_its_form_class_once(clinician, patient, monkeypatch):
    monkeypatch.delattr(PHQ9ApiFilter, "_form_class", raising=False)
    client = token_client(clinician)
    ok(client.get(f"{API}/phq9/", {"patient": str(patient.pk)}))
    built = PHQ9ApiFilter._form_class
    ok(client.get(f"{API}/phq9/", {"source": "clinic"}))
    assert PHQ9ApiFilter._form_class is built
    assert client.get(f"{API}/phq9/", {"source": "nonsense"}).status_code == 400


@pytest.mark.django_db
def test_a_filter_whose_choices_depend_on_the_request_gets_a_form_class_per_request(patient):
    class ByPatient(ClinicFilterSet):
        patient = django_filters.ModelChoiceFilter(queryset=lambda request: Patient.objects.all())

        class Meta:
            model = PHQ9Assessment
            fields = ["patient"]

    first = ByPatient(data={"patient": str(patient.pk)}, queryset=PHQ9Assessment.objects.all())
    assert first.is_valid(), first.errors
    assert "_form_class" not in vars(ByPatient)
    assert ByPatient(data={}, queryset=PHQ9Assessment.objects.all()).get_form_class() is not type(first.form)
