"""Change history and the audit search: who changed what (before and after), kept by the
database for every writer, searchable by an auditor, rewritable by nobody."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from audit import trail
from audit.models import AccessLog
from patients.models import Patient
from sessions.models import InfusionAmendment, InfusionSession
from sessions.services import session_amend
from tests.factories import PatientFactory
from tests.test_admin import every_record, given_session  # noqa: F401  (fixtures)


def events(model_name: str, **filters):
    return list(apps.get_model("audit", model_name).objects.filter(**filters).order_by("pgh_id"))


# --- Who may read the trail --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("anonymous", 302),
        ("patient", 403),
        ("scheduler", 403),
        ("clinician", 403),
        ("auditor", 200),
        ("superuser", 200),
    ],
)
def test_only_auditors_and_superusers_read_the_audit_trail(request, client, who, status):
    if who != "anonymous":
        user = request.getfixturevalue(who)
        client.force_login(user.user if who == "patient" else user)
    assert client.get(reverse("audit:search")).status_code == status


@pytest.mark.django_db
def test_an_auditor_starts_on_the_trail_and_reads_no_patient_record(client, auditor, patient):
    client.force_login(auditor)
    assert client.get("/").url == reverse("audit:search")
    assert client.get(reverse("patients:list")).status_code == 403
    assert client.get(patient.get_absolute_url()).status_code == 403
    api = APIClient()
    api.force_authenticate(auditor)
    assert api.get(f"/api/v1/patients/{patient.pk}/").status_code in (403, 404)


# --- Searching ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_auditor_finds_every_read_of_a_patient_by_record_number(client, auditor, clinician, patient, other_patient):
    reader = APIClient()
    reader.force_login(clinician)
    reader.get(patient.get_absolute_url())
    reader.get(other_patient.get_absolute_url())
    snoop = APIClient()
    snoop.force_login(other_patient.user)
    snoop.get(patient.get_absolute_url())

    client.force_login(auditor)
    page = client.get(reverse("audit:search"), {"patient": patient.mrn})
    assert page.context["patient"] == patient
    reads = [(entry.username, entry.outcome) for entry in page.context["reads"]]
    assert reads == [(other_patient.user.username, "refused"), (clinician.username, "allowed")]
    assert "Refused" in page.content.decode()


@pytest.mark.django_db
def test_a_name_matching_several_patients_asks_which(client, auditor):
    first = PatientFactory(last_name="Quinn", first_name="Ada")
    second = PatientFactory(last_name="Quinn", first_name="Bo")
    client.force_login(auditor)
    page = client.get(reverse("audit:search"), {"patient": "quinn"})
    assert page.context["matches"] == [first, second]
    assert f"?patient={first.pk}" in page.content.decode()


@pytest.mark.django_db
def test_the_auditor_finds_everything_one_user_did(client, auditor, clinician, scheduler, patient):
    for user in (clinician, scheduler):
        browser = APIClient()
        browser.force_login(user)
        browser.get(patient.get_absolute_url())
    client.force_login(auditor)
    page = client.get(reverse("audit:search"), {"user": scheduler.username})
    assert [entry.username for entry in page.context["reads"]] == [scheduler.username]
    assert client.get(reverse("audit:search"), {"user": "nobody"}).context["unknown_user"] == "nobody"


@pytest.mark.django_db
def test_dates_bound_the_search(client, auditor, clinician, patient):
    browser = APIClient()
    browser.force_login(clinician)
    browser.get(patient.get_absolute_url())
    client.force_login(auditor)
    today = dt.date.today()
    assert len(client.get(reverse("audit:search"), {"user": clinician.username, "since": today}).context["reads"]) == 1
    tomorrow = today + dt.timedelta(days=1)
    assert (
        len(client.get(reverse("audit:search"), {"user": clinician.username, "since": tomorrow}).context["reads"]) == 0
    )


@pytest.mark.django_db
def test_the_auditors_own_searches_are_in_the_log(client, auditor, patient):
    client.force_login(auditor)
    client.get(reverse("audit:search"), {"patient": patient.mrn})
    (entry,) = AccessLog.objects.filter(user_id=auditor.pk)
    assert entry.view == "audit:search"
    assert entry.path == reverse("audit:search")  # the MRN is not kept


# --- Change history ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_change_through_a_page_keeps_who_when_where_and_before_and_after(client, clinician, patient):
    client.force_login(clinician)
    form = client.get(reverse("patients:edit", args=[patient.pk])).context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    data |= {"phone": "555-0199", "date_of_birth": patient.date_of_birth.isoformat()}
    data = {key: (value.pk if hasattr(value, "pk") else value) for key, value in data.items()}
    response = client.post(reverse("patients:edit", args=[patient.pk]), data, REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 302, response.context["form"].errors if response.context else response

    (change,) = list(trail.changes(patient_id=patient.pk, user_id=clinician.pk))
    assert change.label == "update"
    assert change.username == clinician.username
    assert change.ip == "10.9.8.7"
    assert change.url == reverse("patients:edit", args=[patient.pk])
    fields = {name: (before, after) for name, before, after in change.fields}
    assert fields["phone"] == (patient.phone, "555-0199")
    assert set(fields) == {"phone"}


@pytest.mark.django_db
def test_a_change_through_the_api_with_a_token_names_the_tokens_user(clinician, patient):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=clinician)[1]}")
    assert api.patch(f"/api/v1/patients/{patient.pk}/", {"phone": "555-0142"}, format="json").status_code == 200
    (change,) = trail.changes(patient_id=patient.pk, user_id=clinician.pk)
    assert change.user_id == clinician.pk
    assert ("phone", patient.phone, "555-0142") in change.fields


@pytest.mark.django_db
def test_plain_sql_and_bulk_updates_are_kept_too(patient):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE patients_patient SET first_name = 'Renamed' WHERE id = %s", [patient.pk])
    Patient.objects.filter(pk=patient.pk).update(last_name="Bulk")
    names = [(e.first_name, e.last_name) for e in events("PatientEvent", pgh_obj_id=patient.pk)]
    assert names[-2:] == [("Renamed", patient.last_name), ("Renamed", "Bulk")]


@pytest.mark.django_db
def test_a_deleted_record_keeps_its_last_values(db):
    patient = PatientFactory()
    patient_id, mrn = patient.pk, patient.mrn
    patient.delete()
    (deleted,) = [c for c in trail.changes(patient_id=patient_id) if c.label == "delete"]
    assert ("medical record number", mrn, None) in deleted.fields


@pytest.mark.django_db
def test_every_event_table_refuses_update_and_delete(every_record, patient):
    for model in trail.event_models():
        assert model.objects.exists(), model  # a row for the triggers to refuse
        table = model._meta.db_table
        for statement in (f"UPDATE {table} SET pgh_label = 'x'", f"DELETE FROM {table}"):
            with (
                pytest.raises(DatabaseError, match="cannot be changed or deleted"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
    assert events("PatientEvent", pgh_obj_id=patient.pk)


@pytest.mark.django_db
def test_the_history_context_cannot_be_deleted(client, clinician, patient):
    client.force_login(clinician)
    api = APIClient()
    api.force_authenticate(clinician)
    api.patch(f"/api/v1/patients/{patient.pk}/", {"phone": "555-0100"}, format="json")
    with pytest.raises(DatabaseError, match="audit"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM pghistory_context")


@pytest.mark.django_db
def test_the_audit_page_shows_a_patients_changes_with_before_and_after(client, auditor, clinician, patient):
    api = APIClient()
    api.force_authenticate(clinician)
    api.patch(f"/api/v1/patients/{patient.pk}/", {"phone": "555-0177"}, format="json")
    client.force_login(auditor)
    page = client.get(reverse("audit:search"), {"patient": str(patient.pk)}).content.decode()
    assert f"{patient.phone} → 555-0177" in page
    assert clinician.username in page


# --- The signed-record lock, in the database ---------------------------------------------


LOCKED = "signed and locked"


def refused(sql: str, params: list) -> None:
    with pytest.raises(DatabaseError, match=LOCKED), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.django_db
def test_plain_sql_cannot_change_or_delete_a_signed_infusion(given_session):
    refused("UPDATE infusions_infusionsession SET dose_mg = 99 WHERE id = %s", [given_session.pk])
    refused("DELETE FROM infusions_infusionsession WHERE id = %s", [given_session.pk])
    with pytest.raises(DatabaseError, match=LOCKED), transaction.atomic():
        InfusionSession.objects.filter(pk=given_session.pk).update(dose_mg=99)  # past save()'s own check
    given_session.refresh_from_db()
    assert given_session.dose_mg != 99


@pytest.mark.django_db
def test_plain_sql_cannot_add_change_or_remove_a_signed_infusions_vitals_or_side_effects(given_session):
    vital = given_session.vitals.first()
    refused("UPDATE infusions_vitalsignreading SET systolic = 200 WHERE id = %s", [vital.pk])
    refused("DELETE FROM infusions_vitalsignreading WHERE id = %s", [vital.pk])
    refused(
        "INSERT INTO infusions_vitalsignreading"
        " (id, session_id, taken_at, phase, recorded_by_id, created_at, updated_at)"
        " SELECT gen_random_uuid(), session_id, taken_at, phase, recorded_by_id, now(), now()"
        " FROM infusions_vitalsignreading WHERE id = %s",
        [vital.pk],
    )
    refused("DELETE FROM infusions_sideeffect WHERE session_id = %s", [given_session.pk])
    assert given_session.vitals.filter(pk=vital.pk, systolic=vital.systolic).exists()


@pytest.mark.django_db
def test_an_amendment_is_the_one_change_a_signed_infusion_takes_and_it_is_kept(given_session, clinician):
    amendment = session_amend(session=given_session, by=clinician, reason="Wrong score", changes={"notes": "Calm."})
    given_session.refresh_from_db()
    assert given_session.notes == "Calm."
    (update,) = [c for c in trail.changes(patient_id=given_session.patient_id) if c.label == "update"][:1]
    assert ("clinical notes", amendment.changes["notes"]["from"], "Calm.") in update.fields
    # The amendment itself is never rewritten or removed.
    for sql in (
        "UPDATE infusions_infusionamendment SET reason = 'x' WHERE id = %s",
        "DELETE FROM infusions_infusionamendment WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="cannot be changed or deleted"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [amendment.pk])
    assert InfusionAmendment.objects.get(pk=amendment.pk).reason == "Wrong score"


@pytest.mark.django_db
def test_the_lock_does_not_stand_aside_for_pgtrigger_ignore(given_session):
    refused(
        "SELECT set_config('pgtrigger.ignore', '{clinic_guard_signed_session}', true);"
        " UPDATE infusions_infusionsession SET dose_mg = 99 WHERE id = %s",
        [given_session.pk],
    )


@pytest.mark.django_db
def test_the_database_not_the_client_says_in_which_transaction_an_amendment_was_written(given_session, clinician):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO infusions_infusionamendment"
            " (id, session_id, author_id, reason, changes, transaction_id, created_at, updated_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'forged', '', 1, now(), now()) RETURNING transaction_id",
            [given_session.pk, clinician.pk],
        )
        (written,) = cursor.fetchone()
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        assert written == cursor.fetchone()[0] != 1
